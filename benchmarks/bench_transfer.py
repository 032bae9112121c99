"""Transfer learning: time to train a head on 1,000 clips of 5 s (embedding included), and classify speed.

The clips are the demo data set's four non-speech classes (``scripts/make_demo_dataset.py --no-speech``):
tones, chirps, click trains and noise bursts in noise, 250 of each, 5 s at 16 kHz (5,000 s of audio). The
weights are synthetic (the same cost as the real ones). Measured in one process, medians over rounds:

1. ``audioembed train DATA -o c.safetensors --no-cache`` end to end (embedding every file, then the head),
   and within it the embedding and the head's share;
2. the same command again from a warm embedding cache (what a second experiment costs);
3. clips/s of ``Classifier.classify_many`` over the clips, against ``Embedder.embed_many`` over the same
   clips in the same rounds: the ratio is what the head adds on top of embedding.

Run: ``python benchmarks/bench_transfer.py`` (``--clips 200 --rounds 1`` for a quick look).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python benchmarks/x.py` from anywhere: import this checkout
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import make_demo_dataset  # noqa: E402

from audioembed import Embedder, cli  # noqa: E402
from audioembed.classifier import Classifier  # noqa: E402


def train_once(data: Path, output: Path, weights: Path, *extra: str) -> float:
    """Wall seconds of one in-process ``audioembed train`` (its chatter swallowed)."""
    args = ["train", str(data), "-o", str(output), "--weights", str(weights), "-q", "--seed", "0", *extra]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(args)
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"audioembed train exited {code}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=1000, help="clips in total (default: 1000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length (default: 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measurement (default: 3)")
    args = parser.parse_args()
    per_class = args.clips // len(make_demo_dataset.NON_SPEECH)
    with tempfile.TemporaryDirectory(prefix="bench_transfer_") as temporary:
        root = Path(temporary)
        weights = root / "synthetic.safetensors"
        with contextlib.redirect_stdout(io.StringIO()):
            cli.main(["weights", "synth", "--seed", "0", "-o", str(weights)])
        data = root / "data"
        made = time.perf_counter()
        make_demo_dataset.make_dataset(data, per_class=per_class, seconds=args.seconds, seed=0, speech=False)
        (data / "manifest.csv").unlink()
        clips = sorted(data.rglob("*.wav"))
        audio_seconds = len(clips) * args.seconds
        print(
            f"{len(clips)} clips of {args.seconds:g} s ({audio_seconds:,.0f} s of audio) made in "
            f"{time.perf_counter() - made:.1f} s; load average {os.getloadavg()[0]:.1f}"
        )

        cold, warm, embed_only = [], [], []
        cache = root / "cache"
        for round_index in range(args.rounds):
            cold.append(train_once(data, root / "c.safetensors", weights, "--no-cache"))
            cache_round = cache / str(round_index)
            embed_only.append(
                train_once(
                    data,
                    root / "e.safetensors",
                    weights,
                    "--cache",
                    str(cache_round),
                    "--epochs",
                    "1",
                    "--patience",
                    "1",
                )
            )
            warm.append(train_once(data, root / "w.safetensors", weights, "--cache", str(cache_round)))
        head_seconds = statistics.median(warm)
        print(
            f"train, embedding included (cold, --no-cache): median {statistics.median(cold):.1f} s "
            f"over {args.rounds} round(s) {[round(x, 1) for x in cold]}"
        )
        print(
            f"  of which embedding ~{statistics.median(embed_only):.1f} s (a 1-epoch run filling the cache), "
            f"{audio_seconds / statistics.median(embed_only):.0f}x real time"
        )
        print(
            f"train again from a warm cache (the head only): median {head_seconds:.2f} s "
            f"{[round(x, 2) for x in warm]}; cold / warm = {statistics.median(cold) / head_seconds:.0f}x"
        )

        embedder = Embedder(weights)
        classifier = Classifier.load(root / "c.safetensors", embedder)
        sample = clips[: min(len(clips), 200)]
        embed_rates, classify_rates = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _result in embedder.embed_many(sample):
                pass
            embed_rates.append(len(sample) / (time.perf_counter() - start))
            start = time.perf_counter()
            for _result in classifier.classify_many(sample):
                pass
            classify_rates.append(len(sample) / (time.perf_counter() - start))
        embed_rate, classify_rate = statistics.median(embed_rates), statistics.median(classify_rates)
        print(
            f"classify_many: median {classify_rate:.1f} clips/s "
            f"({classify_rate * args.seconds:.0f}x real time) "
            f"over {len(sample)} clips; embed_many on the same clips: {embed_rate:.1f} clips/s; "
            f"classify / embed = {classify_rate / embed_rate:.3f}"
        )
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
