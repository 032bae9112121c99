"""Full VGGish forward, examples/s at several batch sizes and peak RSS at batch 64: ours vs ONNX Runtime.

Every measurement runs in its own subprocess (weights generated there, same seed), so memory is measured per
engine and one engine's caches never help the other. Speed children of the two engines alternate, round after
round, and each round's ours/ORT ratio is taken from those two neighbouring children: compare the ratios,
not the absolute rates, on a shared machine. The ONNX graph is built from the same weights with the
``onnx.helper`` API (no torch); ONNX Runtime is skipped when ``onnx``/``onnxruntime`` are not installed
(they are dev-only: ``pip install onnx onnxruntime``).

Ours loads the weights as the product does (``--load mmap``, default): written once as a native file, then
memory-mapped, the parameters being read-only views of the mapping (``--load copy``: generated in the child
and copied into a new model, as before). Pages of the mapping count in RSS once touched.

Peak RSS: the kernel's peak counter is reset once the engine is loaded (weights in memory, graph built), then
batch 64 runs 3 times; the figure is the high-water mark of that phase, everything the process holds included.

    python benchmarks/bench_model.py [--batches 1 8 32 64] [--rounds 3] [--runs 5] [--engines ours ort]
                                     [--load mmap|copy]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import (
    CONV_LAYERS,
    MODEL_FLOPS,
    ROOT,
    WEIGHT_BYTES,
    he_weights,
    log_mel_batch,
    reset_peak_rss,
    rss_mib,
    timed,
)

ENGINES = ("ours", "ort")
RSS_BATCH = 64


def load_ours(weights_file: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """VGGish from the package, in eval mode: its forward dispatches to the fused plans.

    With ``weights_file`` (a native file of the same seeded weights) it loads as the product does
    (``audioembed embed``, the server): parameters are read-only views of the memory-mapped file. Without,
    the weights are generated in the process and copied into a freshly built model (``--load copy``).
    """
    if weights_file is not None:
        from audioembed.vggish.weights import load_vggish

        return load_vggish(weights_file)
    from audioembed.vggish import VGGish

    model = VGGish()
    model.load_state_dict(he_weights(0))
    return model.eval()


def write_weights_file(directory: str) -> str:
    """The seeded weights as a native (safetensors) file in ``directory``, the format the product maps."""
    from audioembed.vggish import params
    from audioembed.vggish.weights import write_native

    state = he_weights(0)
    tensors = {v.tf_name: state[v.key] for v in params.VARIABLES}
    path = Path(directory) / "bench-weights.safetensors"
    write_native(path, tensors, metadata={"source_file": "he_weights(0)", "synthetic": "true"})
    return str(path)


def load_ort() -> Callable[[np.ndarray], np.ndarray]:
    """The same network as an ONNX graph (NCHW inside, like any ONNX export), run by ONNX Runtime."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    weights = he_weights(0)
    inits, nodes = [], []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(array, name))
        return name

    nodes.append(helper.make_node("Reshape", ["x", const("nchw", np.array([-1, 1, 96, 64]))], ["a0"]))
    current = "a0"
    for name, *_, pool in CONV_LAYERS:
        w = const(f"{name}.w", np.ascontiguousarray(weights.pop(f"{name}.weight").transpose(3, 2, 0, 1)))
        b = const(f"{name}.b", weights.pop(f"{name}.bias"))
        nodes.append(
            helper.make_node("Conv", [current, w, b], [f"{name}.c"], kernel_shape=[3, 3], pads=[1] * 4)
        )
        nodes.append(helper.make_node("Relu", [f"{name}.c"], [f"{name}.r"]))
        current = f"{name}.r"
        if pool:
            nodes.append(
                helper.make_node("MaxPool", [current], [f"{name}.p"], kernel_shape=[2, 2], strides=[2, 2])
            )
            current = f"{name}.p"
    nodes.append(helper.make_node("Transpose", [current], ["nhwc"], perm=[0, 2, 3, 1]))  # TF flatten order
    nodes.append(helper.make_node("Reshape", ["nhwc", const("flat", np.array([-1, 12288]))], ["f0"]))
    current = "f0"
    for name, relu in (("fc1_1", True), ("fc1_2", True), ("fc2", False)):
        w, b = (
            const(f"{name}.w", weights.pop(f"{name}.weight")),
            const(f"{name}.b", weights.pop(f"{name}.bias")),
        )
        nodes.append(helper.make_node("Gemm", [current, w, b], [f"{name}.g"]))
        current = f"{name}.g"
        if relu:
            nodes.append(helper.make_node("Relu", [current], [f"{name}.r"]))
            current = f"{name}.r"
    graph = helper.make_graph(
        nodes,
        "vggish",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 96, 64])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["N", 128])],
        inits,
    )
    # IR version 10: what current ONNX Runtime releases accept (newer onnx packages default to later ones)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    serialized = model.SerializeToString()
    del model, graph
    inits.clear()  # only the serialized copy remains until the session has its own
    session = ort.InferenceSession(serialized, providers=["CPUExecutionProvider"])
    del serialized
    output = current
    return lambda x: session.run([output], {"x": x})[0]


def child(engine: str, batches: list[int], runs: int, rss: bool, weights_file: str | None) -> dict:
    forward = load_ours(weights_file) if engine == "ours" else load_ort()
    gc.collect()
    from audioembed.blas import blas_architecture  # in the child, as the engines are loaded there

    result: dict = {"engine": engine, "loaded_rss_mib": rss_mib("VmRSS"), "blas": blas_architecture()}
    if rss:
        result["reset"] = reset_peak_rss()
        x = log_mel_batch(RSS_BATCH)
        for _ in range(3):
            forward(x)
        result["peak_rss_mib"] = rss_mib("VmHWM")
        return result
    rates = {}
    for batch in batches:
        x = log_mel_batch(batch)
        forward(x)  # warm-up: plans, buffers, caches
        times = [timed(lambda x=x: forward(x)) for _ in range(max(runs, 20 if batch == 1 else runs))]
        rates[batch] = batch / statistics.median(times)
    result["rates"] = rates
    result["output"] = forward(log_mel_batch(2, seed=7)).tolist()  # cross-check of the two engines
    return result


def spawn(engine: str, batches: list[int], runs: int, rss: bool, weights_file: str | None) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", engine, "--runs", str(runs)]
    command += ["--batches", *map(str, batches)] + (["--rss"] if rss else [])
    command += ["--weights-file", weights_file] if weights_file else []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{engine} child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--rounds", type=int, default=3, help="alternating ours/ORT child pairs")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per batch size in a child (≥ 5)")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument(
        "--load",
        choices=("mmap", "copy"),
        default="mmap",
        help="ours: a memory-mapped native file, as the product loads (default), or copies in memory",
    )
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--weights-file", help=argparse.SUPPRESS)
    parser.add_argument("--rss", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.batches, args.runs, args.rss, args.weights_file)))
        return
    if args.runs < 5:
        parser.error(f"--runs must be at least 5, got {args.runs}")
    engines = list(args.engines)
    if "ort" in engines and not (
        importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime")
    ):
        print("onnx / onnxruntime not installed: measuring ours only")
        engines.remove("ort")

    with tempfile.TemporaryDirectory(prefix="bench-model-") as directory:
        weights_file = write_weights_file(directory) if args.load == "mmap" else None

        def run(engine: str, batches: list[int], rss: bool) -> dict:
            return spawn(engine, batches, args.runs, rss, weights_file if engine == "ours" else None)

        rounds: list[dict[str, dict]] = []
        for index in range(args.rounds):
            order = engines if index % 2 == 0 else engines[::-1]  # alternate who goes first
            rounds.append({engine: run(engine, args.batches, rss=False) for engine in order})
        memory = {engine: run(engine, [RSS_BATCH], rss=True) for engine in engines}

    print(
        f"VGGish forward, {MODEL_FLOPS / 1e9:.4f} GFLOP/example; {args.rounds} round(s), one child per engine"
    )
    print(f"ours loads its weights by {args.load}; load average {os.getloadavg()[0]:.2f} (1 min) at the end")
    print(f"each child: median of ≥ {args.runs} timed runs per batch after a warm-up")
    # Some machines pin OpenBLAS to older kernels through these variables (see "How to run").
    pinned = ", ".join(
        f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ
    )
    print(
        f"ours runs OpenBLAS's {rounds[0]['ours']['blas'] if 'ours' in engines else '?'} kernels "
        f"({pinned or 'chosen by OpenBLAS for this CPU'})\n"
    )
    header = f"{'batch':>5}" + "".join(f"{e + ' ex/s':>14}" for e in engines)
    if "ort" in engines and "ours" in engines:
        header += f"{'ours/ORT':>10}{'min':>7}{'max':>7}{'ours ms':>9}{'ORT ms':>8}"
    print(header)
    for batch in args.batches:
        key = str(batch)
        rates = {e: [r[e]["rates"][key] for r in rounds] for e in engines}
        line = f"{batch:>5}" + "".join(f"{statistics.median(rates[e]):>14.1f}" for e in engines)
        if "ort" in engines and "ours" in engines:
            ratios = [r["ours"]["rates"][key] / r["ort"]["rates"][key] for r in rounds]
            ours_ms = 1e3 * batch / statistics.median(rates["ours"])
            ort_ms = 1e3 * batch / statistics.median(rates["ort"])
            line += f"{statistics.median(ratios):>10.2f}{min(ratios):>7.2f}{max(ratios):>7.2f}"
            line += f"{ours_ms:>9.1f}{ort_ms:>8.1f}"
        print(line)
    weights_mib = WEIGHT_BYTES / 2**20
    print(
        f"\npeak RSS during batch-{RSS_BATCH} inference (weights: {weights_mib:.1f} MiB; goal ≤ 1.3× = "
        f"{1.3 * weights_mib:.0f} MiB)"
    )
    for engine, m in memory.items():
        peak = m["peak_rss_mib"]
        note = "" if m["reset"] else "  (peak counter not resettable: includes loading)"
        print(
            f"  {engine:<5} loaded {m['loaded_rss_mib']:7.1f} MiB   peak {peak:7.1f} MiB   "
            f"= {peak / weights_mib:.2f}× weights{note}"
        )
    if "ort" in engines and "ours" in engines:
        a, b = (np.array(rounds[0][e]["output"]) for e in ("ours", "ort"))
        difference = np.abs(a - b).max() / np.abs(b).max()
        print(f"\nours vs ORT on the same input: max |diff| / max |ORT| = {difference:.2e}")


if __name__ == "__main__":
    main()
