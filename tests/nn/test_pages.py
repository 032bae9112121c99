"""release_pages: resident pages of read-only mapped arrays go back; anything else is left alone."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pytest
from fast_reference import conv_stack, random_conv_layers, relative_error

from audioembed.nn.fused import ConvStackPlan
from audioembed.nn.pages import release_pages

pytestmark = pytest.mark.skipif(not hasattr(mmap, "MADV_DONTNEED"), reason="needs madvise(MADV_DONTNEED)")

MIB = 2**20


def _rss_file_mib() -> float:
    """Resident pages of file mappings of this process (``RssFile``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no RssFile in /proc/self/status")


def _mapped(tmp_path: Path, array: np.ndarray, mode: str = "r") -> np.ndarray:
    path = tmp_path / "array.bin"
    array.tofile(path)
    return np.memmap(path, dtype=array.dtype, mode=mode, shape=array.shape)


def test_pages_of_a_read_only_mapping_leave_the_resident_set(tmp_path) -> None:
    data = np.random.default_rng(0).standard_normal(8 * MIB // 4).astype(np.float32)  # 8 MiB
    mapped = _mapped(tmp_path, data)
    view = mapped[1000:].reshape(-1)  # a view, like a parameter sliced out of the weights file
    assert float(view.sum(dtype=np.float64)) == pytest.approx(float(data[1000:].sum(dtype=np.float64)))
    touched = _rss_file_mib()
    released = release_pages(view)
    assert released >= 7.9 * MIB and released % mmap.PAGESIZE == 0
    assert _rss_file_mib() <= touched - 7.5
    np.testing.assert_array_equal(view, data[1000:])  # read again: the values fault back in unchanged


def test_other_arrays_are_left_alone(tmp_path) -> None:
    data = np.arange(MIB, dtype=np.float32)
    assert release_pages(data) == 0  # anonymous memory: advising it away would zero it
    assert release_pages(data[::2]) == 0
    copy_on_write = _mapped(tmp_path, data, mode="c")
    copy_on_write[0] = -1.0  # a private write that dropping the pages would lose
    assert release_pages(copy_on_write) == 0
    assert copy_on_write[0] == -1.0
    assert release_pages(np.zeros(0, np.float32)) == 0


def test_plan_built_from_mapped_kernels_matches_and_releases_them(tmp_path) -> None:
    rng = np.random.default_rng(3)
    layers = random_conv_layers(rng, [1, 16, 256, 256], [True, False, True])  # 2.9 MiB of kernels
    x = rng.standard_normal((2, 16, 16)).astype(np.float32)
    expected = conv_stack(x[..., None], layers)
    warm = ConvStackPlan(layers, input_shape=(16, 16, 1))  # the same code paths, from in-memory kernels
    warm(x), warm(x[:1])
    warm.close()
    mapped = _mapped(tmp_path, np.concatenate([w.ravel() for w, _, _ in layers]))
    views, offset = [], 0
    for w, _, _ in layers:
        views.append(mapped[offset : offset + w.size].reshape(w.shape))
        offset += w.size
    float(mapped.sum(dtype=np.float64))  # every page resident
    touched = _rss_file_mib()
    plan = ConvStackPlan(
        [(v, b, pool) for v, (_, b, pool) in zip(views, layers, strict=True)], input_shape=(16, 16, 1)
    )
    try:
        assert _rss_file_mib() <= touched - 2.0  # transformed, then handed back
        assert relative_error(plan(x), expected) <= 1e-5
        assert relative_error(plan(x[:1]), expected[:1]) <= 1e-5  # tiny batch: the direct path re-reads them
    finally:
        plan.close()
