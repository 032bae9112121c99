"""Per-call options of the Embedder, validated once, with the error naming the bad value.

The front-end owns the rules for hop, short-clip policy and resampler (:mod:`audioembed.audio.examples`);
this module only adds the output kind and bundles them, so a bad option fails when the Embedder is built
rather than at the first file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from audioembed.audio.constants import EXAMPLE_HOP_SECONDS, FRAMES_PER_SECOND
from audioembed.audio.examples import (
    RESAMPLER_METHODS,
    SHORT_CLIP_POLICIES,
    check_resampler,
    check_short_clip,
    hop_to_frames,
)
from audioembed.errors import InvalidOptionError
from audioembed.result import OUTPUT_KINDS

__all__ = ["OUTPUT_KINDS", "RESAMPLER_METHODS", "SHORT_CLIP_POLICIES", "EmbedOptions", "check_hop_seconds"]


@dataclass(frozen=True)
class EmbedOptions:
    """How to turn audio into embeddings.

    Attributes
    ----------
    output : {"both", "raw", "quantized"}
    hop_seconds : float
        Distance between example starts: a positive multiple of 0.01 s.
    short_clip : {"pad", "drop"}
    resampler : {"reference", "fast"}
    """

    output: str = "both"
    hop_seconds: float = EXAMPLE_HOP_SECONDS
    short_clip: str = "pad"
    resampler: str = "reference"

    def __post_init__(self) -> None:
        if self.output not in OUTPUT_KINDS:
            raise InvalidOptionError(f"output must be one of {OUTPUT_KINDS}, got {self.output!r}")
        check_short_clip(self.short_clip)
        check_resampler(self.resampler)
        check_hop_seconds(self.hop_seconds)

    def override(self, **changes: object) -> EmbedOptions:
        """A copy with the given options replaced; ``None`` values keep the current setting."""
        given = {name: value for name, value in changes.items() if value is not None}
        return dataclasses.replace(self, **given) if given else self


def check_hop_seconds(hop_seconds: object) -> float:
    """Return ``hop_seconds`` as whole 10 ms frames in seconds, or raise :class:`InvalidOptionError`."""
    return hop_to_frames(hop_seconds) / FRAMES_PER_SECOND
