"""Check converted weights the way Google's ``vggish_smoke_test.py`` does, before trusting them.

The check runs audio through the front-end *and* the model, so it lives here beside the pipeline rather than
in :mod:`audioembed.vggish`, which knows no audio.

A 3 s, 1 kHz sine at 16 kHz goes through the front-end, the model and the postprocessor; the mean
and standard deviation of the raw and quantized embeddings must match the reference's within 10 %
(the reference's own relative tolerance). Wrong layouts, a wrong flatten order or swapped tensors
change these statistics far more than that.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from os import PathLike

import numpy as np

from audioembed.audio import waveform_to_examples
from audioembed.errors import WeightsVerificationError
from audioembed.vggish.model import VGGish
from audioembed.vggish.postprocess import Postprocessor
from audioembed.vggish.weights.loaders import load_postprocessor, load_vggish

SIGNAL_SECONDS = 3  # the reference smoke test's signal: 3 s ...
SIGNAL_HZ = 1000.0  # ... of a 1 kHz sine ...
SIGNAL_RATE_HZ = 16000  # ... sampled at the model's rate
RELATIVE_TOLERANCE = 0.1  # vggish_smoke_test.py's rel_error


@dataclass(frozen=True)
class SmokeStatistics:
    """Mean and standard deviation of the smoke-test embeddings (all 3 × 128 values)."""

    raw_mean: float
    raw_std: float
    postprocessed_mean: float
    postprocessed_std: float

    def __str__(self) -> str:
        return (
            f"raw mean {self.raw_mean:.6g}, raw std {self.raw_std:.6g}, postprocessed mean "
            f"{self.postprocessed_mean:.6g}, postprocessed std {self.postprocessed_std:.6g}"
        )


# The reference's output for the signal above with the official checkpoint and PCA parameters.
REFERENCE_STATISTICS = SmokeStatistics(
    raw_mean=0.000657, raw_std=0.343, postprocessed_mean=126.0, postprocessed_std=89.3
)


def smoke_signal() -> np.ndarray:
    """The test signal: float64 [48000], ``sin(2π·1000·t)`` for t = 0, 1/16000, ... < 3 s."""
    t = np.arange(SIGNAL_SECONDS * SIGNAL_RATE_HZ) / SIGNAL_RATE_HZ
    return np.sin(2 * np.pi * SIGNAL_HZ * t)


def smoke_statistics(model: VGGish, postprocessor: Postprocessor) -> SmokeStatistics:
    """Run the smoke signal through front-end, model and postprocessor; summarise the outputs."""
    log_mel, _ = waveform_to_examples(smoke_signal(), SIGNAL_RATE_HZ)  # [3, 96, 64]
    raw = model(log_mel)  # [3, 128] float32
    quantized = postprocessor(raw)  # [3, 128] uint8
    return SmokeStatistics(
        raw_mean=float(raw.mean()),
        raw_std=float(raw.std()),
        postprocessed_mean=float(quantized.mean()),
        postprocessed_std=float(quantized.std()),
    )


def verify_weights(
    weights: str | PathLike[str],
    pca: str | PathLike[str] | None = None,
    *,
    expected: SmokeStatistics = REFERENCE_STATISTICS,
    rtol: float = RELATIVE_TOLERANCE,
) -> SmokeStatistics:
    """Check that a weights file (and PCA parameters) reproduce the expected smoke-test statistics.

    Parameters
    ----------
    weights : str or PathLike
        Any supported weights file.
    pca : str or PathLike, optional
        PCA parameters; by default those inside ``weights`` (a native file converted with PCA).
    expected : SmokeStatistics
        What the statistics should be: the reference's by default.
    rtol : float
        Allowed relative error of each statistic.

    Returns
    -------
    SmokeStatistics
        The measured statistics.

    Raises
    ------
    WeightsVerificationError
        Naming every statistic off by more than ``rtol``, with measured and expected values.
    """
    measured = smoke_statistics(load_vggish(weights), load_postprocessor(pca if pca is not None else weights))
    check_statistics(measured, expected, rtol=rtol, source=str(weights))
    return measured


def check_statistics(
    measured: SmokeStatistics, expected: SmokeStatistics, *, rtol: float = RELATIVE_TOLERANCE, source: str
) -> None:
    """Raise :class:`WeightsVerificationError` naming every statistic off by more than ``rtol``."""
    failures = []
    for field in fields(SmokeStatistics):
        value, target = getattr(measured, field.name), getattr(expected, field.name)
        error = abs(value - target) / abs(target) if target else abs(value)
        if not error <= rtol:  # also catches NaN
            failures.append(
                f"{field.name.replace('_', ' ')} {value:.6g} vs expected {target:.6g} "
                f"(off by {error:.1%}, limit {rtol:.0%})"
            )
    if failures:
        raise WeightsVerificationError(
            f"{source} failed the smoke test: " + "; ".join(failures) + ". The weights or PCA "
            "parameters are not the ones expected (wrong file, corrupted download, or a layout bug)."
        )
