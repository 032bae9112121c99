"""Shared pieces of the benchmarks: random He-scaled VGGish weights, FLOP counts, timing, memory probes.

Not part of the package and not run by the tests: the benchmarks print medians of repeated runs and
ratios measured in the same run, because this machine's speed swings by 2× within minutes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python benchmarks/x.py` from anywhere: import this checkout
    sys.path.insert(0, str(ROOT))

from audioembed.vggish import params  # noqa: E402

# VGGish's conv layers: (name, input height, input width, Cin, Cout, pool after)
CONV_LAYERS = [
    ("conv1", 96, 64, 1, 64, True),
    ("conv2", 48, 32, 64, 128, True),
    ("conv3_1", 24, 16, 128, 256, False),
    ("conv3_2", 24, 16, 256, 256, True),
    ("conv4_1", 12, 8, 256, 512, False),
    ("conv4_2", 12, 8, 512, 512, True),
]
# Direct-convolution multiply-adds × 2 per example, per layer (2·H·W·9·Cin·Cout): 1,592,524,800 in total.
CONV_FLOPS = {name: 2 * h * w * 9 * cin * cout for name, h, w, cin, cout, _ in CONV_LAYERS}
DENSE_FLOPS = {"fc1_1": 2 * 12288 * 4096, "fc1_2": 2 * 4096 * 4096, "fc2": 2 * 4096 * 128}
MODEL_FLOPS = sum(CONV_FLOPS.values()) + sum(DENSE_FLOPS.values())  # 1,727,791,104 per example
WEIGHT_BYTES = 4 * sum(int(np.prod(v.shape)) for v in params.VARIABLES)  # 288,564,736 (275.2 MiB)


def he_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 weights under the model's state-dict keys: uniform He (variance 2 / fan-in)."""
    rng = np.random.default_rng(seed)
    state = {}
    for variable in params.VARIABLES:
        if variable.key.endswith(".weight"):
            fan_in = int(np.prod(variable.shape[:-1]))
            w = rng.random(variable.shape, dtype=np.float32)
            w -= np.float32(0.5)
            w *= np.float32(2.0 * np.sqrt(6.0 / fan_in))
            state[variable.key] = w
        else:
            state[variable.key] = (0.01 * rng.standard_normal(variable.shape)).astype(np.float32)
    return state


def log_mel_batch(batch: int, seed: int = 1) -> np.ndarray:
    """A batch of log-mel-like examples ``[batch, 96, 64]`` float32 (log of positive values)."""
    rng = np.random.default_rng(seed)
    return np.log(rng.random((batch, params.NUM_FRAMES, params.NUM_BANDS)) + 0.01).astype(np.float32)


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def matmul_gflops(size: int = 4096) -> float:
    """One ``size²`` float32 ``numpy.matmul`` at NumPy's default BLAS threads, in GFLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    return 2 * size**3 / timed(lambda: a @ b) / 1e9


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux ≥ 4.0); False if not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def rss_mib(field: str = "VmHWM") -> float:
    """``VmHWM`` (peak resident set since the last reset) or ``VmRSS`` (now) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
