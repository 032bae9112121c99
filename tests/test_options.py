"""EmbedOptions: every option is validated with a message quoting the bad value."""

from __future__ import annotations

import pytest

from audioembed.errors import InvalidOptionError
from audioembed.options import EmbedOptions, check_hop_seconds


@pytest.mark.parametrize("hop", [0.01, 0.48, 0.96, 1, 2.5, 10.0])
def test_whole_frame_hops_are_accepted(hop):
    assert check_hop_seconds(hop) == pytest.approx(hop)


@pytest.mark.parametrize("hop", [0, -0.96, 0.015, 0.005, float("nan"), float("inf"), "0.96", True, None])
def test_other_hops_are_rejected_naming_the_value(hop):
    with pytest.raises(InvalidOptionError, match="hop_seconds"):
        check_hop_seconds(hop)


@pytest.mark.parametrize(
    ("field", "value"), [("output", "floats"), ("short_clip", "repeat"), ("resampler", "sinc")]
)
def test_unknown_choices_are_rejected(field, value):
    with pytest.raises(InvalidOptionError, match=f"{field} must be one of .*got '{value}'"):
        EmbedOptions(**{field: value})


def test_override_replaces_given_values_only():
    base = EmbedOptions(hop_seconds=0.48)
    assert base.override(short_clip=None, hop_seconds=None) is base
    changed = base.override(short_clip="drop")
    assert (changed.short_clip, changed.hop_seconds) == ("drop", 0.48)
    with pytest.raises(InvalidOptionError):
        base.override(hop_seconds=0.333)
