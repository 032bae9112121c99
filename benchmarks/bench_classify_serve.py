"""What a served classifier costs on top of embedding: ``Classify`` against ``Embed``, same server, same run.

Starts ``audioembed serve --classifier demo=...`` as a subprocess on a loopback port (synthetic weights and a
random MLP head on them: the head's cost does not depend on its training). Each round sends the same clips
with ``--clients`` concurrent clients, once as ``Embed`` and once as ``Classify`` (order alternating between
rounds, so both see the same machine load), and a lone request of each. Reported: medians over rounds of
clips/s and of lone-request latency, and the per-round ratio Classify / Embed.

    python benchmarks/bench_classify_serve.py                  # 5 rounds, 32 clips of 4 s, 16 clients
    python benchmarks/bench_classify_serve.py --rounds 3 --clips 16
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "server")]

from audioembed_server import EmbeddingClient  # noqa: E402

from audioembed import Embedder, cli  # noqa: E402
from audioembed.classifier import ClassifierFile, ClassifierHead, HeadConfig, write_classifier  # noqa: E402
from audioembed.classifier.file import state_tensors  # noqa: E402


def make_clips(count: int, seconds: float) -> list[bytes]:
    """``count`` different 16 kHz 16-bit WAV files of ``seconds`` each, as bytes."""
    rng = np.random.default_rng(0)
    clips = []
    for i in range(count):
        t = np.arange(round(seconds * 16000)) / 16000
        samples = 0.4 * np.sin(2 * np.pi * (200 + 25 * i) * t) + 0.05 * rng.standard_normal(t.size)
        buffer = io.BytesIO()
        sf.write(buffer, samples, 16000, format="WAV", subtype="PCM_16")
        clips.append(buffer.getvalue())
    return clips


def make_head(weights: Path, output: Path, classes: int) -> Path:
    """A random MLP head (``classes`` labels) for ``weights``, written as a classifier file."""
    info = Embedder(weights).model_info
    head = ClassifierHead(HeadConfig(classes, model="mlp"), rng=np.random.default_rng(0))
    contents = ClassifierFile(
        tensors=state_tensors(head.state_dict()),
        labels=tuple(f"class_{i}" for i in range(classes)),
        multi_label=False,
        config=head.config,
        vggish_sha256=info.weights_sha256,
        vggish_synthetic=info.synthetic,
        pca_sha256=info.pca_sha256,
    )
    return write_classifier(output, contents)


def start_server(weights: Path, head: Path) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "server")]))
    command = [sys.executable, "-m", "audioembed_server", "serve", "--host", "127.0.0.1", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--weights", str(weights), "--classifier", f"demo={head}", "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    line = process.stdout.readline()  # "audioembed serve: listening on 127.0.0.1:PORT"
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return process, line.rsplit(" ", 1)[-1].strip()


def timed_all(call, clips: list[bytes], clients: int) -> float:
    """Clips/s of ``call(clip)`` over every clip with ``clients`` concurrent callers."""
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(call, clips))
    return len(clips) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--clip-seconds", type=float, default=4.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    clips = make_clips(args.clips, args.clip_seconds)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "synthetic.safetensors"
        cli.main(["weights", "synth", "--seed", "0", "-o", str(weights)])
        head = make_head(weights, Path(tmp) / "demo.safetensors", args.classes)
        process, address = start_server(weights, head)
        try:
            with EmbeddingClient(address, timeout=300.0) as client:
                while client.health() != "SERVING":
                    time.sleep(0.2)
                calls = {
                    "Embed": lambda clip: client.embed(clip, output="raw"),
                    "Classify": lambda clip: client.classify(clip, "demo"),
                }
                for call in calls.values():  # warm-up
                    call(clips[0])
                rates: dict[str, list[float]] = {name: [] for name in calls}
                lone: dict[str, list[float]] = {name: [] for name in calls}
                ratios = []
                for round_index in range(args.rounds):
                    order = list(calls) if round_index % 2 == 0 else list(reversed(calls))
                    for name in order:
                        rates[name].append(timed_all(calls[name], clips, args.clients))
                        started = time.perf_counter()
                        calls[name](clips[round_index % len(clips)])
                        lone[name].append(1000 * (time.perf_counter() - started))
                    ratios.append(rates["Classify"][-1] / rates["Embed"][-1])
        finally:
            process.terminate()
            process.wait(timeout=60)
    load = os.getloadavg()[0]
    print(f"{args.clips} clips of {args.clip_seconds:g} s, {args.clients} clients, {args.rounds} rounds, "
          f"MLP head, {args.classes} classes; load average {load:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    for name in calls:
        print(f"{name:9s} {statistics.median(rates[name]):7.1f} clips/s   lone request "
              f"{statistics.median(lone[name]):7.1f} ms (medians)")  # fmt: skip
    print(f"Classify / Embed throughput: median {statistics.median(ratios):.3f} "
          f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)})")  # fmt: skip


if __name__ == "__main__":
    main()
