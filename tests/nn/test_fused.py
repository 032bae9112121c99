"""ConvStackPlan and DensePlan against float64 layer-by-layer references."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fast_reference import conv_stack, random_conv_layers, relative_error
from naive import naive_conv2d, naive_max_pool2d, naive_relu

from audioembed.errors import InvalidOptionError, ShapeError
from audioembed.nn import fused, fused_layers, winograd
from audioembed.nn.fused import ConvStackPlan
from audioembed.nn.fused_dense import GEMV_MAX_ROWS, DensePlan

TOLERANCE = 1e-5

# VGGish's conv stack with its real shapes (96×64×1 → 6×4×512).
VGGISH_CHANNELS = [1, 64, 128, 256, 256, 512, 512]
VGGISH_POOLS = [True, True, False, True, False, True]


@pytest.fixture(scope="module")
def vggish_layers() -> list[tuple[np.ndarray, np.ndarray, bool]]:
    return random_conv_layers(np.random.default_rng(0), VGGISH_CHANNELS, VGGISH_POOLS)


@pytest.fixture(scope="module")
def vggish_plan(vggish_layers) -> ConvStackPlan:
    plan = ConvStackPlan(vggish_layers, input_shape=(96, 64, 1), num_workers=2)
    yield plan
    plan.close()


def test_vggish_stack_matches_layer_by_layer_float64(vggish_layers, vggish_plan) -> None:
    x = np.random.default_rng(1).standard_normal((3, 96, 64)).astype(np.float32)
    y = vggish_plan(x)
    assert y.shape == (3, 6, 4, 512) and y.dtype == np.float32
    assert relative_error(y, conv_stack(x[..., None], vggish_layers)) <= TOLERANCE


def test_buffers_are_reused_correctly_across_batch_sizes(vggish_layers, vggish_plan) -> None:
    # A big batch, then smaller ones: reused buffers must keep their zero borders and not leak old images.
    rng = np.random.default_rng(2)
    big = rng.standard_normal((9, 96, 64, 1)).astype(np.float32)
    small = rng.standard_normal((1, 96, 64, 1)).astype(np.float32)
    first = vggish_plan(big)
    assert relative_error(vggish_plan(small), conv_stack(small, vggish_layers)) <= TOLERANCE
    np.testing.assert_array_equal(vggish_plan(big), first)  # deterministic: same chunks, same order of sums
    assert vggish_plan(big[:0]).shape == (0, 6, 4, 512)


def test_stages_share_padded_buffers_and_rezero_their_borders(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two stages run by images (SPLIT_TILES = 0) share each worker's arena of padded buffers: the second
    # stage's buffer lies where the first stage wrote activations, so its zero border must be restored.
    monkeypatch.setattr(fused, "SPLIT_TILES", 0)
    rng = np.random.default_rng(11)
    layers = random_conv_layers(rng, [1, 8, 16, 16, 16], [True, True, False, True])
    plan = ConvStackPlan(layers, input_shape=(16, 16, 1), num_workers=2, scratch_bytes=1)
    try:
        for batch in (5, 3, 5):
            x = rng.standard_normal((batch, 16, 16)).astype(np.float32)
            assert relative_error(plan(x), conv_stack(x[..., None], layers)) <= TOLERANCE
    finally:
        plan.close()


@pytest.mark.parametrize("num_workers", [1, 2, 3])
@pytest.mark.parametrize("tile", [2, 4])
def test_small_stack_any_workers_tiles_and_chunking(num_workers: int, tile: int) -> None:
    # A tiny scratch budget forces one image per work item: many items, every worker busy.
    rng = np.random.default_rng(num_workers * 10 + tile)
    layers = random_conv_layers(rng, [2, 8, 12, 16], [True, False, True])
    plan = ConvStackPlan(layers, input_shape=(16, 24, 2), tile=tile, num_workers=num_workers, scratch_bytes=1)
    try:
        x = rng.standard_normal((5, 16, 24, 2))  # float64 input is accepted
        y = plan(x)
        assert y.shape == (5, 4, 6, 16)
        expected = x
        for weight, bias, pool in layers:  # the nn package's naive loop twins, layer by layer
            expected = naive_relu(naive_conv2d(expected, weight, bias, stride=1, padding="same"))
            expected = naive_max_pool2d(expected, 2) if pool else expected
        assert relative_error(y, expected) <= TOLERANCE
    finally:
        plan.close()


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("num_workers", [1, 2, 3])
def test_separable_transforms_in_every_mode(monkeypatch: pytest.MonkeyPatch, tile: int, num_workers: int):
    # VGGish takes the separable transforms only from 16384 columns: force them onto a small stack, in blocks
    # that do not divide the columns, through the image-split and channel-split (batches 1 and 2) modes.
    monkeypatch.setattr(winograd, "SEPARABLE_MIN_COLUMNS", 0)
    monkeypatch.setattr(winograd, "SEPARABLE_BLOCK", 40)
    rng = np.random.default_rng(tile * 10 + num_workers)
    layers = random_conv_layers(rng, [1, 8, 24, 16], [True, False, True])
    plan = ConvStackPlan(layers, input_shape=(48, 16, 1), tile=tile, num_workers=num_workers)
    try:
        for n in (1, 2, 5, 3, 1, 5):
            x = rng.standard_normal((n, 48, 16, 1)).astype(np.float32)
            assert relative_error(plan(x), conv_stack(x, layers)) <= TOLERANCE
    finally:
        plan.close()


def test_batches_smaller_than_the_workers_split_by_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    layers = random_conv_layers(rng, [1, 8, 40, 24], [True, False, True])  # 40 channels: 3 uneven blocks
    plan = ConvStackPlan(layers, input_shape=(48, 16, 1), num_workers=3)  # 12 tiles per image: Winograd
    spans: list[tuple[int, int]] = []
    real_run = plan.pool.run
    monkeypatch.setattr(plan.pool, "run", lambda fn, items: (spans.extend(items), real_run(fn, items)))
    for n in (2, 1, 4, 2):  # split, split (reused buffers), chunked, split again
        spans.clear()
        x = rng.standard_normal((n, 48, 16, 1)).astype(np.float32)
        assert relative_error(plan(x), conv_stack(x, layers)) <= TOLERANCE
        if n < 3:  # images (one image: bands of its 6 tile rows) for the input transform, then channel blocks
            images = [(0, 2), (2, 4), (4, 6)] if n == 1 else [(0, 1), (1, 2)]
            assert spans == [*images, (0, 14), (14, 28), (28, 40), *images, (0, 8), (8, 16), (16, 24)]
    plan.close()


@pytest.mark.parametrize("num_workers", [1, 2])
def test_tiny_batches_take_the_direct_path(monkeypatch: pytest.MonkeyPatch, num_workers: int) -> None:
    rng = np.random.default_rng(9)
    layers = random_conv_layers(rng, [1, 8, 24, 16], [True, False, True])
    plan = ConvStackPlan(layers, input_shape=(16, 8, 1), num_workers=num_workers)
    assert all(layer.direct(2) for layer in plan.layers[1:])  # 2×1 tiles per image, ≤ DIRECT_MAX_TILES
    x = rng.standard_normal((2, 16, 8, 1)).astype(np.float32)
    y = plan(x)
    assert relative_error(y, conv_stack(x, layers)) <= TOLERANCE
    monkeypatch.setattr(fused_layers, "DIRECT_MAX_TILES", 0)  # the same batch through Winograd
    assert not plan.layers[1].direct(2)
    assert relative_error(plan(x), y.astype(np.float64)) <= TOLERANCE
    plan.close()


def test_concurrent_calls_are_serialised_and_correct() -> None:
    rng = np.random.default_rng(8)
    layers = random_conv_layers(rng, [1, 8, 16], [True, True])
    conv = ConvStackPlan(layers, input_shape=(16, 16, 1), num_workers=2)
    dense = DensePlan(_dense_layers(rng, [4 * 4 * 16, 32, 5], [True, False]), num_workers=2)
    inputs = [rng.standard_normal((n, 16, 16)).astype(np.float32) for n in (1, 3, 6, 2, 5, 4)]
    expected = [dense(conv(x).reshape(len(x), -1)) for x in inputs]
    results: dict[int, np.ndarray] = {}

    def call(index: int) -> None:
        for _ in range(5):
            results[index] = dense(conv(inputs[index]).reshape(len(inputs[index]), -1))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for index, want in enumerate(expected):
        np.testing.assert_array_equal(results[index], want)
    conv.close()
    dense.close()


def test_non_contiguous_input_and_winograd_first_layer() -> None:
    rng = np.random.default_rng(4)
    layers = random_conv_layers(rng, [6, 8, 4], [False, True])  # Cin = 6: Winograd from the first layer
    plan = ConvStackPlan(layers, input_shape=(8, 12, 6), num_workers=2)
    base = rng.standard_normal((4, 12, 8, 9)).astype(np.float32)
    x = base.transpose(0, 2, 1, 3)[::2, :, :, 1:7]  # [2, 8, 12, 6], non-contiguous
    y = plan(x)
    assert relative_error(y, conv_stack(x, layers)) <= TOLERANCE
    plan.close()


def test_pool_after_patch_layer_without_pool() -> None:
    rng = np.random.default_rng(5)
    layers = random_conv_layers(rng, [1, 4, 8], [False, True])  # patch layer without pooling
    plan = ConvStackPlan(layers, input_shape=(8, 8, 1), num_workers=2)
    x = rng.standard_normal((3, 8, 8)).astype(np.float32)
    assert relative_error(plan(x), conv_stack(x[..., None], layers)) <= TOLERANCE
    plan.close()


def test_plan_transforms_weights_at_build_time() -> None:
    rng = np.random.default_rng(6)
    layers = random_conv_layers(rng, [1, 8, 8], [True, False])
    plan = ConvStackPlan(layers, input_shape=(32, 32, 1), num_workers=1)
    x = rng.standard_normal((1, 32, 32)).astype(np.float32)  # 16 tiles: Winograd, on the transformed kernel
    before = plan(x)
    layers[1][0][...] = 0.0  # mutating the caller's array must not change the plan
    np.testing.assert_array_equal(plan(x), before)
    plan.release_buffers()
    np.testing.assert_array_equal(plan(x), before)
    plan.close()


@pytest.mark.parametrize(
    ("layers", "input_shape", "error", "message"),
    [
        ([], (8, 8, 1), InvalidOptionError, "at least one layer"),
        (
            [(np.zeros((3, 3, 2, 4)), np.zeros(4), False)],
            (8, 8, 1),
            ShapeError,
            r"layer 0: .*got \(3, 3, 2, 4\)",
        ),
        (
            [(np.zeros((3, 3, 1, 4)), np.zeros(3), False)],
            (8, 8, 1),
            ShapeError,
            r"bias must be \(4,\), got \(3,\)",
        ),
        (
            [(np.zeros((3, 3, 1, 4)), np.zeros(4), True)],
            (7, 8, 1),
            ShapeError,
            r"even height and width.*\(7, 8\)",
        ),
        (
            [(np.zeros((3, 3, 8, 4)), np.zeros(4), False)],
            (6, 8, 8),
            ShapeError,
            r"divisible by 4, got \(6, 8\)",
        ),
    ],
)
def test_plan_rejects_bad_layers(layers, input_shape, error, message) -> None:
    with pytest.raises(error, match=message):
        ConvStackPlan(layers, input_shape=input_shape)


@pytest.mark.parametrize("scratch", [0, -5, 1.5])
def test_plan_rejects_bad_scratch(scratch) -> None:
    layers = [(np.zeros((3, 3, 1, 4)), np.zeros(4), False)]
    with pytest.raises(InvalidOptionError, match=f"scratch_bytes must be a positive int, got {scratch!r}"):
        ConvStackPlan(layers, input_shape=(8, 8, 1), scratch_bytes=scratch)


@pytest.mark.parametrize("shape", [(2, 96, 64, 2), (2, 64, 96), (96, 64), (2, 96, 64, 1, 1)])
def test_plan_rejects_bad_input_shape(vggish_plan, shape) -> None:
    with pytest.raises(ShapeError, match=r"expects input \[N, 96, 64, 1\], got shape"):
        vggish_plan(np.zeros(shape, dtype=np.float32))


# --- DensePlan ---------------------------------------------------------------------------------------------


def _dense_layers(rng: np.random.Generator, widths: list[int], relus: list[bool]):
    return [
        (
            (rng.standard_normal((i, o)) / np.sqrt(i)).astype(np.float32),
            rng.standard_normal(o).astype(np.float32),
            relu,
        )
        for i, o, relu in zip(widths[:-1], widths[1:], relus, strict=True)
    ]


def _dense_reference(x, layers):
    x = np.asarray(x, dtype=np.float64)
    for weight, bias, relu in layers:
        x = x @ weight.astype(np.float64) + bias
        if relu:
            x = np.maximum(x, 0.0)
    return x


def _laid_out(layers, layouts: str):
    """The layers, kernel k C-contiguous (input-major) or F-contiguous (output-major) by ``layouts[k]``."""
    return [
        (np.asfortranarray(w) if layout == "F" else np.ascontiguousarray(w), b, relu)
        for (w, b, relu), layout in zip(layers, layouts, strict=True)
    ]


@pytest.mark.parametrize("num_workers", [1, 2])
@pytest.mark.parametrize("batch", [1, 2, 3, GEMV_MAX_ROWS, GEMV_MAX_ROWS + 1, 64])  # GEMV and GEMM paths
@pytest.mark.parametrize("layouts", ["CCC", "FFF", "FCF", "CFC"])
def test_dense_plan_matches_float64(num_workers: int, batch: int, layouts: str) -> None:
    rng = np.random.default_rng(batch + num_workers)
    layers = _laid_out(_dense_layers(rng, [96, 200, 50, 7], [True, True, False]), layouts)
    plan = DensePlan(layers, num_workers=num_workers)
    assert [layer.output_major for layer in plan.layers] == [c == "F" for c in layouts]
    x = rng.standard_normal((batch, 96))
    y = plan(x)
    assert y.shape == (batch, 7) and y.dtype == np.float32 and y.flags.c_contiguous
    assert relative_error(y, _dense_reference(x, layers)) <= 1e-6
    assert (y < 0).any()  # no ReLU after the last layer
    plan.close()


@pytest.mark.parametrize("layouts", ["CC", "FF"])
def test_dense_plan_empty_batch(layouts: str) -> None:
    plan = DensePlan(_laid_out(_dense_layers(np.random.default_rng(0), [8, 4, 3], [True, False]), layouts))
    y = plan(np.zeros((0, 8), np.float32))
    assert y.shape == (0, 3) and y.dtype == np.float32
    plan.close()


def test_dense_plan_keeps_float32_weights_as_views_in_either_layout() -> None:
    layers = _laid_out(_dense_layers(np.random.default_rng(0), [8, 4, 3], [True, False]), "CF")
    plan = DensePlan(layers)
    assert plan.layers[0].weight is layers[0][0] and not plan.layers[0].output_major
    assert plan.layers[1].weight is layers[1][0] and plan.layers[1].output_major
    plan.close()


def test_dense_plan_copies_other_weights_input_major() -> None:
    weight = np.arange(24, dtype=np.float64).reshape(4, 6)[:, ::2]  # float64, neither C nor F contiguous
    plan = DensePlan([(weight, np.zeros(3), False)])
    kernel = plan.layers[0].weight
    assert kernel.dtype == np.float32 and kernel.flags.c_contiguous and not plan.layers[0].output_major
    np.testing.assert_array_equal(plan(np.eye(4)), weight)
    plan.close()


@pytest.mark.parametrize(
    ("layers", "error", "message"),
    [
        ([], InvalidOptionError, "at least one layer"),
        (
            [(np.zeros(4), np.zeros(4), True)],
            ShapeError,
            r"layer 0: expected a \[in, out\] weight, got \(4,\)",
        ),
        (
            [(np.zeros((4, 5)), np.zeros(5), True), (np.zeros((4, 2)), np.zeros(2), False)],
            ShapeError,
            r"layer 1: expected a \[5, out\] weight, got \(4, 2\)",
        ),
        ([(np.zeros((4, 5)), np.zeros(4), True)], ShapeError, r"bias must be \(5,\), got \(4,\)"),
    ],
)
def test_dense_plan_rejects_bad_layers(layers, error, message) -> None:
    with pytest.raises(error, match=message):
        DensePlan(layers)


@pytest.mark.parametrize("shape", [(3,), (2, 4), (2, 3, 3)])
def test_dense_plan_rejects_bad_input(shape) -> None:
    plan = DensePlan([(np.zeros((3, 2)), np.zeros(2), False)])
    with pytest.raises(ShapeError, match=r"expects input \[N, 3\], got shape"):
        plan(np.zeros(shape))
    plan.close()
