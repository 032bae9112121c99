"""How far the ``fast`` resampler moves log-mel and embeddings away from the reference resampler.

Embeds the same audio twice, ``resampler="reference"`` (resampy ``kaiser_best``, what Google's pipeline
uses) and ``resampler="fast"`` (``scipy.signal.resample_poly``), and prints the differences: log-mel
(absolute), raw embeddings (relative to max |embedding|), quantized bytes (share that differ, largest
step). Inputs: the 44.1 kHz stereo golden file, and noise + tones at other common rates.
Weights: synthetic (``--weights`` for real ones). Run: ``python benchmarks/resampler_drift.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "server")]

from audioembed import Embedder, audio, cli  # noqa: E402


def signals() -> list[tuple[str, np.ndarray, int]]:
    golden, rate = audio.load_audio(ROOT / "tests" / "fixtures" / "reference" / "stereo_44k1_5s.wav")
    out = [("stereo_44k1_5s.wav (golden)", golden, rate)]
    rng = np.random.default_rng(0)
    for rate in (8000, 22050, 32000, 48000, 96000):
        t = np.arange(10 * rate) / rate
        tones = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (220.0, 1250.0, 3900.0, 6800.0))
        out.append((f"10 s tones + noise @ {rate} Hz", tones + 0.05 * rng.standard_normal(t.size), rate))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="weights file (default: synthetic, seed 0)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        weights = args.weights
        if weights is None:
            weights = str(Path(temp) / "synthetic.safetensors")
            cli.main(["weights", "synth", "--seed", "0", "-o", weights])
        reference = Embedder(weights, resampler="reference")
        fast = Embedder(weights, resampler="fast")
        header = ["log-mel max|d|", "raw max|d|/max", "bytes differ", "max step"]
        print(f"\n{'input':34s} " + " ".join(f"{h:>15s}" for h in header))
        for name, samples, rate in signals():
            a, b = reference.embed(samples, rate), fast.embed(samples, rate)
            mel_a = reference.extract(samples, rate).log_mel
            mel_b = fast.extract(samples, rate).log_mel
            raw = np.abs(a.embeddings - b.embeddings).max() / np.abs(a.embeddings).max()
            steps = np.abs(a.quantized.astype(int) - b.quantized.astype(int))
            print(
                f"{name:34s} {np.abs(mel_a - mel_b).max():15.3g} {raw:15.3g} {np.mean(steps > 0):13.1%} "
                f"{steps.max():9d}"
            )


if __name__ == "__main__":
    main()
