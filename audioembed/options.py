"""Per-call options of the Embedder, validated once, with the error naming the bad value."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from audioembed.errors import InvalidOptionError
from audioembed.result import OUTPUT_KINDS

SHORT_CLIP_POLICIES = ("pad", "drop")
RESAMPLERS = ("reference", "fast")
_FRAME_HOP_SECONDS = 0.010  # hops must be whole log-mel frames
_MAX_HOP_SECONDS = 3600.0  # a hop longer than an hour is a units mistake, not a wish


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
    hop_seconds: float = 0.96
    short_clip: str = "pad"
    resampler: str = "reference"

    def __post_init__(self) -> None:
        _check_choice("output", self.output, OUTPUT_KINDS)
        _check_choice("short_clip", self.short_clip, SHORT_CLIP_POLICIES)
        _check_choice("resampler", self.resampler, RESAMPLERS)
        check_hop_seconds(self.hop_seconds)

    def override(self, **changes: object) -> EmbedOptions:
        """A copy with the given options replaced; ``None`` values keep the current setting."""
        given = {name: value for name, value in changes.items() if value is not None}
        return dataclasses.replace(self, **given) if given else self


def check_hop_seconds(hop_seconds: object) -> float:
    """Return ``hop_seconds`` as a float if it is a positive whole number of 10 ms frames, else raise."""
    if isinstance(hop_seconds, bool) or not isinstance(hop_seconds, (int, float)):
        raise InvalidOptionError(f"hop_seconds must be a number of seconds, got {hop_seconds!r}")
    frames = hop_seconds / _FRAME_HOP_SECONDS
    if not 0 < hop_seconds <= _MAX_HOP_SECONDS or abs(frames - round(frames)) > 1e-6:
        raise InvalidOptionError(
            f"hop_seconds must be a positive multiple of 0.01 s (whole 10 ms frames) up to "
            f"{_MAX_HOP_SECONDS:g} s, got {hop_seconds!r}"
        )
    return float(hop_seconds)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidOptionError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
