"""``Postprocessor``: PCA buffers, truncating quantization, shapes, and the reference's own outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audioembed.errors import InvalidInputError, ShapeError, WeightsFormatError
from audioembed.vggish import Postprocessor, params

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "reference"


@pytest.fixture(scope="module")
def pca() -> dict[str, np.ndarray]:
    with np.load(REFERENCE_DIR / "synthetic_pca_params.npz") as data:
        return dict(data)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(REFERENCE_DIR / "speechlike_16k_10s.reference.npz") as data:
        return {key: data[key] for key in ("embedding", "pca_applied", "postprocessed")}


def test_matches_the_reference_postprocessor(
    pca: dict[str, np.ndarray], golden: dict[str, np.ndarray]
) -> None:
    post = Postprocessor()
    post.load_state_dict(pca)  # the official .npz's array names are the state-dict keys
    projected = post.pca_applied(golden["embedding"])
    assert projected.dtype == np.float64
    assert np.abs(projected - golden["pca_applied"]).max() <= 1e-4

    quantized = post(golden["embedding"])
    expected = golden["postprocessed"]
    assert quantized.shape == (10, 128) and quantized.dtype == np.uint8
    # Where the reference's value sits within 1e-3 of an integer step, float noise may flip the byte by 1.
    clipped = np.clip(golden["pca_applied"], params.QUANTIZE_MIN_VAL, params.QUANTIZE_MAX_VAL)
    scaled = (clipped - params.QUANTIZE_MIN_VAL) * params.QUANTIZE_SCALE
    near_boundary = np.abs(scaled - np.round(scaled)) < 1e-3
    difference = np.abs(quantized.astype(int) - expected.astype(int))
    assert (difference[~near_boundary] == 0).all()
    assert difference.max() <= 1


def test_from_params_equals_loading(pca: dict[str, np.ndarray], golden: dict[str, np.ndarray]) -> None:
    built = Postprocessor.from_params(pca["pca_eigen_vectors"], pca["pca_means"].reshape(1, 128))
    assert not built.training
    loaded = Postprocessor(**pca)
    np.testing.assert_array_equal(built(golden["embedding"]), loaded(golden["embedding"]))
    with pytest.raises(ShapeError, match=r"eigenvectors must have shape \(128, 128\), got \(3,\)"):
        Postprocessor.from_params(np.zeros(3), pca["pca_means"])


def test_truncates_and_clips() -> None:
    post = Postprocessor()  # identity projection, zero means
    step = 1 / params.QUANTIZE_SCALE
    values = np.zeros((1, 128))
    values[0, :4] = [-2 + 10.9 * step, -2 + 10.2 * step, 5.0, -5.0]
    out = post(values)
    assert out[0, :4].tolist() == [10, 10, 255, 0]  # 10.9 → 10: truncation, not rounding
    assert out[0, 4] == int(2 * params.QUANTIZE_SCALE)  # 0.0 → 127.5 → 127


def test_buffers_not_parameters(pca: dict[str, np.ndarray]) -> None:
    post = Postprocessor(pca["pca_eigen_vectors"], pca["pca_means"].astype(np.float32))
    assert list(post.parameters()) == []
    state = post.state_dict()
    assert list(state) == ["pca_eigen_vectors", "pca_means"]
    assert state["pca_eigen_vectors"].dtype == np.float64 and state["pca_means"].dtype == np.float64
    assert state["pca_means"].shape == (128,)


@pytest.mark.parametrize("means_shape", [(128,), (128, 1), (1, 128)])
def test_accepts_and_normalises_means_shapes(
    pca: dict[str, np.ndarray], means_shape: tuple[int, ...]
) -> None:
    means = pca["pca_means"].reshape(means_shape)
    built = Postprocessor(pca["pca_eigen_vectors"], means)
    loaded = Postprocessor()
    loaded.load_state_dict({"pca_eigen_vectors": pca["pca_eigen_vectors"], "pca_means": means})
    for post in (built, loaded):
        assert post.pca_means.shape == (128,)
        np.testing.assert_array_equal(post.pca_means, pca["pca_means"])


def test_output_rank_never_depends_on_batch_size(pca: dict[str, np.ndarray]) -> None:
    post = Postprocessor(pca["pca_eigen_vectors"], pca["pca_means"])
    one = post(np.zeros((1, 128), np.float32))
    assert one.shape == (1, 128) and one.dtype == np.uint8
    none = post(np.zeros((0, 128), np.float32))
    assert none.shape == (0, 128) and none.dtype == np.uint8
    assert post.pca_applied(np.zeros((0, 128))).shape == (0, 128)


def test_float_cast_keeps_float64_projection(
    pca: dict[str, np.ndarray], golden: dict[str, np.ndarray]
) -> None:
    post = Postprocessor(pca["pca_eigen_vectors"], pca["pca_means"]).float()
    assert post.pca_means.dtype == np.float32
    assert post.pca_applied(golden["embedding"]).dtype == np.float64


@pytest.mark.parametrize(
    ("eigen_shape", "means_shape", "message"),
    [
        ((128, 127), (128,), r"eigenvectors must have shape \(128, 128\), got \(128, 127\)"),
        ((128, 128), (127,), r"means must have shape \(128,\), \(128, 1\) or \(1, 128\), got \(127,\)"),
        ((128, 128), (2, 64), r"got \(2, 64\)"),
    ],
)
def test_bad_parameter_shapes(eigen_shape: tuple, means_shape: tuple, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        Postprocessor(np.zeros(eigen_shape), np.zeros(means_shape))


def test_bad_loaded_shape_is_reported() -> None:
    with pytest.raises(WeightsFormatError, match=r"shape mismatch for 'pca_means': got \(64,\)"):
        Postprocessor().load_state_dict({"pca_eigen_vectors": np.eye(128), "pca_means": np.zeros(64)})


def test_needs_both_parameters_or_neither() -> None:
    with pytest.raises(InvalidInputError, match="needs both pca_eigen_vectors and pca_means, or neither"):
        Postprocessor(np.eye(128))


@pytest.mark.parametrize(
    ("embeddings", "error", "message"),
    [
        (np.zeros(128), ShapeError, r"embeddings of shape \[N, 128\], got shape \(128,\)"),
        (np.zeros((2, 64)), ShapeError, r"embeddings of shape \[N, 128\], got shape \(2, 64\)"),
        (np.zeros((2, 128), np.int32), InvalidInputError, "floating-point embeddings, got dtype int32"),
        (np.full((2, 128), np.nan), InvalidInputError, "got 256 non-finite embedding values"),
    ],
)
def test_bad_embeddings(embeddings: np.ndarray, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Postprocessor()(embeddings)
