"""One VGGish training step (forward, backward, SGD), ours vs PyTorch 2.13 eager: examples/s and peak RSS.

The network is the full VGGish plus a small head (``Linear(128, 10)`` on ``ReLU(embedding)``), the loss the
mean cross-entropy against fixed labels, the update plain SGD (``p -= lr * grad``, then the gradients are
dropped), on the same He-scaled weights in both engines. Two settings:

- ``full``: every parameter trained (fine-tuning the whole network);
- ``frozen``: the conv layers frozen (``requires_grad`` False), fc1_1 / fc1_2 / fc2 and the head trained.

Every measurement runs in its own subprocess; speed children of the two engines alternate round after round
and each round's ours/torch ratio comes from neighbouring children (compare ratios, not absolute rates, on a
shared machine). PyTorch runs with 2 intra-op threads (``torch.set_num_threads(2)``), ours with its default
two workers. The last column is the ratio of CPU time per step (``time.process_time``, all threads): on a
heavily loaded machine wall time mostly measures the other tenants, CPU time what each engine costs (it
counts torch's OpenMP threads spinning while they wait, which a quiet machine also pays, less). Peak RSS:
the kernel's peak counter is reset once the model is loaded, then 3 batch-32 steps run; the figure is
everything the process holds at its high-water mark.

torch is dev-only (``pip install torch==2.13.0``); without it only ours is measured.

    python benchmarks/bench_train.py [--batches 32 64] [--rounds 3] [--runs 3] [--settings full frozen]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import CONV_LAYERS, ROOT, he_weights, log_mel_batch, reset_peak_rss, rss_mib, timed

ENGINES = ("ours", "torch")
SETTINGS = ("full", "frozen")
RSS_BATCH = 32
LEARNING_RATE = 1e-4
CLASSES = 10
CONV_NAMES = [name for name, *_ in CONV_LAYERS]


def head_weights() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    return (rng.standard_normal((128, CLASSES)) * 0.05).astype(np.float32), np.zeros(CLASSES, np.float32)


def labels(batch: int) -> np.ndarray:
    return np.arange(batch, dtype=np.int64) % CLASSES


def step_ours(setting: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """A training step of the package's VGGish: Tensors in, backward, then SGD on the arrays in place."""
    from audioembed.nn import Linear, Tensor, functional
    from audioembed.vggish import VGGish

    model = VGGish(initialize=False)
    model.load_state_dict(he_weights(0))
    head = Linear(128, CLASSES, initialize=False)
    head.weight.data, head.bias.data = head_weights()
    if setting == "frozen":
        for name in CONV_NAMES:
            getattr(model, name).requires_grad_(False)
    trained = [p for p in [*model.parameters(), *head.parameters()] if p.requires_grad]
    lr = np.float32(-LEARNING_RATE)

    def step(x: np.ndarray, y: np.ndarray) -> float:
        logits = head(model(Tensor(x)).relu())  # [N, 10]
        loss = -functional.log_softmax(logits)[np.arange(len(y)), y].mean()
        loss.backward()
        for p in trained:  # SGD: p -= lr * grad, in place (the gradient array is ours to scale)
            grad = p.grad
            grad *= lr
            p.data += grad
            p.grad = None
        return loss.item()

    return step


def step_torch(setting: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """The same step in PyTorch eager (NCHW convolutions, NHWC flatten as the TF weights expect)."""
    import torch
    from torch import nn

    torch.set_num_threads(2)
    weights = he_weights(0)
    convs = []
    layers: list[nn.Module] = []
    for name, _, _, cin, cout, pool in CONV_LAYERS:
        conv = nn.Conv2d(cin, cout, 3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(weights[f"{name}.weight"].transpose(3, 2, 0, 1).copy()))
            conv.bias.copy_(torch.from_numpy(weights[f"{name}.bias"]))
        convs.append(conv)
        layers += [conv, nn.ReLU()] + ([nn.MaxPool2d(2, 2)] if pool else [])
    features = nn.Sequential(*layers)
    dense = {}
    for name, (cin, cout) in {"fc1_1": (12288, 4096), "fc1_2": (4096, 4096), "fc2": (4096, 128)}.items():
        dense[name] = nn.Linear(cin, cout)
        with torch.no_grad():
            dense[name].weight.copy_(torch.from_numpy(weights[f"{name}.weight"].T.copy()))
            dense[name].bias.copy_(torch.from_numpy(weights[f"{name}.bias"]))
    head = nn.Linear(128, CLASSES)
    hw, hb = head_weights()
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(hw.T.copy()))
        head.bias.copy_(torch.from_numpy(hb))
    del weights
    if setting == "frozen":
        features.requires_grad_(False)
    modules = [features, *dense.values(), head]
    trained = [p for m in modules for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trained, lr=LEARNING_RATE)

    def step(x: np.ndarray, y: np.ndarray) -> float:
        h = features(torch.from_numpy(x).unsqueeze(1))  # [N, 512, 6, 4]
        h = h.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # NHWC flatten
        h = torch.relu(dense["fc1_1"](h))
        h = torch.relu(dense["fc1_2"](h))
        logits = head(torch.relu(dense["fc2"](h)))
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(y))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def child(engine: str, setting: str, batches: list[int], runs: int, rss: bool) -> dict:
    step = step_ours(setting) if engine == "ours" else step_torch(setting)
    result: dict = {"engine": engine, "setting": setting, "loaded_rss_mib": rss_mib("VmRSS")}
    if rss:
        result["reset"] = reset_peak_rss()
        x, y = log_mel_batch(RSS_BATCH), labels(RSS_BATCH)
        result["losses"] = [step(x, y) for _ in range(3)]
        result["peak_rss_mib"] = rss_mib("VmHWM")
        return result
    rates, cpu = {}, {}
    for batch in batches:
        x, y = log_mel_batch(batch), labels(batch)
        step(x, y)  # warm-up: buffers, thread pools
        times, cpus = [], []
        for _ in range(runs):
            start = time.process_time()
            times.append(timed(lambda x=x, y=y: step(x, y)))
            cpus.append(time.process_time() - start)
        rates[batch] = batch / statistics.median(times)
        cpu[batch] = statistics.median(cpus)
    result["rates"], result["cpu_s"] = rates, cpu
    return result


def spawn(engine: str, setting: str, batches: list[int], runs: int, rss: bool) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", engine, "--settings", setting]
    command += ["--runs", str(runs), "--batches", *map(str, batches)] + (["--rss"] if rss else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{engine} child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--rounds", type=int, default=3, help="alternating ours/torch child pairs")
    parser.add_argument("--runs", type=int, default=3, help="timed steps per batch size in a child")
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS children")
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--rss", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.settings[0], args.batches, args.runs, args.rss)))
        return
    engines = list(args.engines)
    if "torch" in engines and not importlib.util.find_spec("torch"):
        print("torch not installed: measuring ours only")
        engines.remove("torch")
    load = os.getloadavg()[0]
    rounds: list[dict[tuple[str, str], dict]] = []
    for index in range(args.rounds):
        order = engines if index % 2 == 0 else engines[::-1]
        rounds.append(
            {(e, s): spawn(e, s, args.batches, args.runs, False) for s in args.settings for e in order}
        )
    memory = (
        {}
        if args.no_rss
        else {(e, s): spawn(e, s, [RSS_BATCH], 1, True) for s in args.settings for e in engines}
    )

    print(
        f"VGGish + head training step (forward, backward, SGD); {args.rounds} round(s), one child per engine"
    )
    print(f"each child: median of {args.runs} timed steps per batch after a warm-up; load avg {load:.1f}\n")
    both = "ours" in engines and "torch" in engines
    header = f"{'setting':>8}{'batch':>6}" + "".join(f"{e + ' ex/s':>13}" for e in engines)
    print(header + (f"{'ours/torch':>12}{'min':>7}{'max':>7}{'CPU torch/ours':>16}" if both else ""))
    for setting in args.settings:
        for batch in args.batches:
            key = str(batch)
            rates = {e: [r[(e, setting)]["rates"][key] for r in rounds] for e in engines}
            line = f"{setting:>8}{batch:>6}" + "".join(
                f"{statistics.median(rates[e]):>13.1f}" for e in engines
            )
            if both:
                ratios = [
                    r[("ours", setting)]["rates"][key] / r[("torch", setting)]["rates"][key] for r in rounds
                ]
                line += f"{statistics.median(ratios):>12.2f}{min(ratios):>7.2f}{max(ratios):>7.2f}"
                cpu = [
                    r[("torch", setting)]["cpu_s"][key] / r[("ours", setting)]["cpu_s"][key] for r in rounds
                ]
                line += f"{statistics.median(cpu):>16.2f}"
            print(line)
    if memory:
        print(f"\npeak RSS of batch-{RSS_BATCH} steps (counter reset after loading)")
        for (engine, setting), m in memory.items():
            note = "" if m["reset"] else "  (peak counter not resettable: includes loading)"
            loss = ", ".join(f"{v:.4f}" for v in m["losses"])
            print(
                f"  {engine:>5} {setting:>6}: {m['peak_rss_mib']:7.0f} MiB "
                f"(loaded {m['loaded_rss_mib']:.0f} MiB; losses {loss}){note}"
            )
    print(f"\nload avg at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
