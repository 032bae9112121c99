"""The reference smoke test, as a check: a 3 s 1 kHz sine at 16 kHz through the whole pipeline.

With the official weights it checks the statistics Google's ``vggish_smoke_test.py`` checks. With other
weights (synthetic ones, or a fine-tuned model) those statistics mean nothing, so it checks what must hold
for any weights: shapes, dtypes, finite values, determinism, and batch independence (an example's
embedding does not depend on what else is in its batch). Against a server it runs the same checks on the
service's output and, when weights are available locally too, compares the two.

Run ``audioembed smoke-test`` or ``python -m audioembed.smoke_test``; exit code 0 and "Looks Good To Me"
only when every check held.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from audioembed.errors import AudioEmbedError
from audioembed.result import EmbeddingResult, ModelInfo

SIGNAL_SECONDS = 3
SIGNAL_HZ = 1000.0
SIGNAL_RATE = 16000
# Statistics of the reference's output for this signal with the official files (vggish_smoke_test.py).
REFERENCE_RAW_MEAN = 0.000657
REFERENCE_RAW_STD = 0.343
REFERENCE_POSTPROCESSED_MEAN = 126.0
REFERENCE_POSTPROCESSED_STD = 89.3
REFERENCE_RELATIVE_TOLERANCE = 0.1
# Float32 results differ in the last bits with batch composition (BLAS blocking); anything larger is a bug.
BATCH_RELATIVE_TOLERANCE = 1e-5
CLIENT_ENTRY_POINT_GROUP = "audioembed.clients"


@dataclass(frozen=True)
class Check:
    """One verified property: what, whether it held, and the numbers behind the verdict."""

    name: str
    passed: bool
    detail: str


def sine_signal() -> np.ndarray:
    """The reference's test signal: float64 [48000], ``sin(2π·1000·t)`` for t = 0, 1/16000, ... < 3 s."""
    t = np.arange(0, SIGNAL_SECONDS, 1 / SIGNAL_RATE)
    return np.sin(2 * np.pi * SIGNAL_HZ * t)


def expects_reference_statistics(info: ModelInfo) -> bool:
    """Whether the weights claim to be Google's: not synthetic, and read or converted from the official
    checkpoint. ``info`` may be the library's :class:`ModelInfo` or a service's description of itself:
    only ``synthetic`` and ``weights_source`` are relied on."""
    return not info.synthetic and "vggish_model.ckpt" in info.weights_source.lower()


def check_result(result: EmbeddingResult, info: ModelInfo, *, label: str) -> list[Check]:
    """Shape, dtype, finiteness and (for official weights) reference-statistics checks of one result."""
    checks = [
        Check(
            f"{label}: {SIGNAL_SECONDS} examples with timestamps",
            result.num_examples == SIGNAL_SECONDS
            and np.allclose(result.timestamps, np.arange(SIGNAL_SECONDS) * result.hop_seconds),
            f"timestamps {result.timestamps.tolist()}",
        )
    ]
    raw = result.embeddings
    if raw is not None:
        checks.append(
            Check(
                f"{label}: raw embeddings float32 [3, 128], finite",
                raw.shape == (SIGNAL_SECONDS, 128)
                and raw.dtype == np.float32
                and bool(np.isfinite(raw).all()),
                f"{raw.dtype} {list(raw.shape)}, mean {raw.mean():.6f}, std {raw.std():.6f}",
            )
        )
    quantized = result.quantized
    if quantized is not None:
        checks.append(
            Check(
                f"{label}: quantized uint8 [3, 128]",
                quantized.shape == (SIGNAL_SECONDS, 128) and quantized.dtype == np.uint8,
                f"{quantized.dtype} {list(quantized.shape)}, "
                f"mean {quantized.mean():.2f}, std {quantized.std():.2f}",
            )
        )
    if expects_reference_statistics(info):
        if raw is not None:
            checks += _statistic(f"{label}: raw mean", raw.mean(), REFERENCE_RAW_MEAN)
            checks += _statistic(f"{label}: raw std", raw.std(), REFERENCE_RAW_STD)
        if quantized is not None:
            checks += _statistic(
                f"{label}: postprocessed mean", quantized.mean(), REFERENCE_POSTPROCESSED_MEAN
            )
            checks += _statistic(f"{label}: postprocessed std", quantized.std(), REFERENCE_POSTPROCESSED_STD)
    return checks


def check_embedder(embedder) -> list[Check]:
    """Every in-process check: one result's properties, determinism, and batch independence."""
    try:
        return _check_embedder(embedder)
    except AudioEmbedError as error:  # e.g. the postprocessor refusing non-finite embeddings
        return [Check("in-process: embed the test signal", False, f"{type(error).__name__}: {error}")]


def _check_embedder(embedder) -> list[Check]:
    info = embedder.model_info
    first = embedder.embed(sine_signal(), SIGNAL_RATE)
    checks = check_result(first, info, label="in-process")
    second = embedder.embed(sine_signal(), SIGNAL_RATE)
    checks.append(
        Check(
            "in-process: deterministic (two runs identical)",
            _same(first.embeddings, second.embeddings) and _same(first.quantized, second.quantized),
            "compared raw and quantized bit for bit",
        )
    )
    examples = embedder.extract(sine_signal(), SIGNAL_RATE)
    batch_raw, _ = embedder.run_model(examples.log_mel)
    alone = np.concatenate(
        [embedder.run_model(examples.log_mel[i : i + 1])[0] for i in range(len(batch_raw))]
    )
    difference = _relative_difference(alone, batch_raw)
    checks.append(
        Check(
            "in-process: batch independent (each example alone == in a batch)",
            difference <= BATCH_RELATIVE_TOLERANCE,
            f"max difference {difference:.2e} of max |embedding| (limit {BATCH_RELATIVE_TOLERANCE:.0e})",
        )
    )
    return checks


def check_server(client, embedder=None) -> list[Check]:
    """Checks of a running service; with a local ``embedder``, its output must equal the service's."""
    try:
        return _check_server(client, embedder)
    except AudioEmbedError as error:  # the client raises the package's errors for failed calls
        return [Check("service: embed the test signal", False, f"{type(error).__name__}: {error}")]


def _check_server(client, embedder) -> list[Check]:
    info = client.model_info()
    first = client.embed(sine_signal(), sample_rate=SIGNAL_RATE)
    checks = check_result(first, info, label="service")
    second = client.embed(sine_signal(), sample_rate=SIGNAL_RATE)
    checks.append(
        Check(
            "service: deterministic (two calls identical)",
            _same(first.embeddings, second.embeddings) and _same(first.quantized, second.quantized),
            "compared raw and quantized bit for bit",
        )
    )
    if embedder is None:
        return checks
    local_info = embedder.model_info
    checks.append(
        Check(
            "service and in-process use the same weights",
            info.weights_sha256 in (local_info.weights_sha256, local_info.metadata.get("source_sha256")),
            f"service {info.weights_sha256[:12]}…, local {local_info.weights_sha256[:12]}…",
        )
    )
    local = embedder.embed(sine_signal(), SIGNAL_RATE)
    if local.embeddings is not None and first.embeddings is not None:
        difference = _relative_difference(local.embeddings, first.embeddings)
        checks.append(
            Check(
                "service raw == in-process raw",
                difference <= BATCH_RELATIVE_TOLERANCE,
                f"max difference {difference:.2e} of max |embedding|",
            )
        )
    if local.quantized is not None and first.quantized is not None:
        worst = int(np.abs(local.quantized.astype(int) - first.quantized.astype(int)).max())
        checks.append(
            Check("service quantized == in-process quantized (±1)", worst <= 1, f"max step {worst}")
        )
    return checks


def load_client_factory() -> Callable[..., object]:
    """The gRPC client class, registered by the server package under :data:`CLIENT_ENTRY_POINT_GROUP`."""
    for entry_point in metadata.entry_points(group=CLIENT_ENTRY_POINT_GROUP):
        if entry_point.name == "grpc":
            return entry_point.load()
    raise AudioEmbedError(
        "checking a server needs the audioembed gRPC client, which is not installed with this package "
        "(reinstall audioembed: pip install audioembed)"
    )


def report(checks: list[Check], *, stream=None) -> bool:
    """Print every check and the verdict; return whether all passed."""
    stream = stream or sys.stdout
    for check in checks:
        print(f"[{'ok' if check.passed else 'FAIL'}] {check.name}: {check.detail}", file=stream)
    passed = bool(checks) and all(check.passed for check in checks)
    print("\nLooks Good To Me!" if passed else "\nSmoke test FAILED.", file=stream)
    return passed


def _statistic(name: str, value: float, expected: float) -> list[Check]:
    error = abs(value - expected) / abs(expected)
    return [
        Check(
            name,
            error <= REFERENCE_RELATIVE_TOLERANCE,
            f"{value:.6g} vs reference {expected:g} "
            f"({error:.1%} off, limit {REFERENCE_RELATIVE_TOLERANCE:.0%})",
        )
    ]


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


def _relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(float(np.abs(b).max()), 1e-12)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) / scale


if __name__ == "__main__":
    from audioembed.cli import main

    sys.exit(main(["smoke-test", *sys.argv[1:]]))
