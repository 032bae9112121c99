"""``load_vggish`` / ``load_postprocessor`` from every format, and the smoke-test verification.

Building a VGGish takes seconds (72 M parameters), so models are shared where a test only reads them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from audioembed.errors import WeightsFormatError, WeightsVerificationError
from audioembed.vggish import Postprocessor, VGGish, load_postprocessor, load_vggish
from audioembed.vggish.fast import DENSE_LAYERS
from audioembed.vggish.weights import build_vggish, read_weights
from audioembed.weights_check import (
    REFERENCE_STATISTICS,
    SmokeStatistics,
    check_statistics,
    smoke_signal,
    smoke_statistics,
    verify_weights,
)


@pytest.fixture(scope="module")
def examples() -> np.ndarray:
    """Two log-mel-like examples: float32 [2, 96, 64]."""
    return np.random.default_rng(5).normal(-2.0, 2.0, size=(2, 96, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def native_model(full_files) -> VGGish:
    return load_vggish(full_files["native"])


@pytest.fixture(scope="module")
def reference_output(native_model, examples) -> np.ndarray:
    return native_model(examples)


def test_native_model_holds_the_synthetic_weights(native_model, synthetic_tensors):
    np.testing.assert_array_equal(
        native_model.conv3_2.weight.data, synthetic_tensors["vggish/conv3/conv3_2/weights"]
    )
    np.testing.assert_array_equal(native_model.fc2.bias.data, synthetic_tensors["vggish/fc2/biases"])
    assert not native_model.training


def test_a_foreign_format_gives_the_same_model(full_files, examples, reference_output):
    # The .pth formats read to identical tensors (test_weights_torch.py), so one foreign format suffices.
    model = load_vggish(full_files["tf-checkpoint"])
    assert isinstance(model, VGGish)
    _assert_output_major_dense_kernels(model)  # laid out so after the copy, as the native file stores them
    np.testing.assert_array_equal(model(examples), reference_output)


def _assert_output_major_dense_kernels(model: VGGish) -> None:
    """The layout the fused dense stack runs fastest on (``Wᵀ @ xᵀ``, see audioembed.nn.fused_dense)."""
    for name in DENSE_LAYERS:
        weight = getattr(model, name).weight.data
        assert weight.flags.f_contiguous and not weight.flags.c_contiguous, name


def test_native_parameters_share_the_mapped_file(full_files, native_model, examples, reference_output):
    assert not native_model.fc1_1.weight.data.flags.writeable  # a view of the read-only mapping
    _assert_output_major_dense_kernels(native_model)
    private = load_vggish(full_files["native"], share_memory=False)
    assert private.fc1_1.weight.data.flags.writeable and private.fc1_1.weight.data.flags.owndata
    _assert_output_major_dense_kernels(private)
    np.testing.assert_array_equal(private(examples), reference_output)


def test_a_partial_state_loaded_later_keeps_the_dense_kernels_output_major(full_files, synthetic_tensors):
    # As Embedder.with_model_state does for a fine-tuned classifier's dense layers.
    model = load_vggish(full_files["native"])
    new_fc2 = np.ascontiguousarray(synthetic_tensors["vggish/fc2/weights"] * 0.5)
    model.load_state_dict({"fc2.weight": new_fc2}, strict=False)
    _assert_output_major_dense_kernels(model)
    np.testing.assert_array_equal(model.fc2.weight.data, new_fc2)


def test_load_vggish_from_a_pca_file_says_so(full_files):
    with pytest.raises(WeightsFormatError, match="holds only PCA parameters"):
        load_vggish(full_files["npz"])
    with pytest.raises(WeightsFormatError, match=r"vggish_pca_params\.npz holds only PCA parameters \(npz\)"):
        build_vggish(read_weights(full_files["npz"]))


@pytest.mark.parametrize("kind", ["npz", "pca-pth", "native"])
def test_postprocessor_from_every_pca_source(full_files, synthetic_pca, kind):
    post = load_postprocessor(full_files[kind])
    assert isinstance(post, Postprocessor)
    np.testing.assert_array_equal(post.pca_eigen_vectors, synthetic_pca["pca_eigen_vectors"])
    np.testing.assert_array_equal(post.pca_means, synthetic_pca["pca_means"])
    assert post(np.zeros((1, 128), np.float32)).dtype == np.uint8


def test_postprocessor_from_weights_without_pca(full_files):
    with pytest.raises(WeightsFormatError, match="holds no PCA parameters"):
        load_postprocessor(full_files["tf-checkpoint"])


def test_synthetic_activations_neither_vanish_nor_explode(native_model, full_files):
    stats = smoke_statistics(native_model, load_postprocessor(full_files["native"]))
    assert 0.1 < stats.raw_std < 100
    assert 30 < stats.postprocessed_std < 120  # quantized values spread over the byte range
    assert smoke_signal().shape == (48000,)


def test_verify_weights_end_to_end(full_files, native_model):
    expected = smoke_statistics(native_model, load_postprocessor(full_files["native"]))
    # The TF checkpoint with a separate PCA file reproduces the native file's statistics exactly.
    assert verify_weights(full_files["tf-checkpoint"], full_files["npz"], expected=expected) == expected
    with pytest.raises(
        WeightsVerificationError, match=r"failed the smoke test: raw mean .* vs expected 0\.000657"
    ):
        verify_weights(full_files["native"])  # synthetic weights are not the reference's


def test_check_statistics_names_every_failing_statistic():
    measured = SmokeStatistics(
        raw_mean=0.000657, raw_std=0.343 * 1.5, postprocessed_mean=126.0, postprocessed_std=1.0
    )
    with pytest.raises(WeightsVerificationError) as error:
        check_statistics(measured, REFERENCE_STATISTICS, source="w.safetensors")
    message = str(error.value)
    assert "raw std 0.5145 vs expected 0.343 (off by 50.0%, limit 10%)" in message
    assert "postprocessed std 1 vs expected 89.3" in message
    assert "raw mean" not in message and "postprocessed mean" not in message


def test_check_statistics_within_tolerance_and_nan():
    within = dataclasses.replace(REFERENCE_STATISTICS, raw_std=0.343 * 1.09)
    check_statistics(within, REFERENCE_STATISTICS, source="w")
    nan = dataclasses.replace(REFERENCE_STATISTICS, raw_mean=float("nan"))
    with pytest.raises(WeightsVerificationError, match="raw mean nan"):
        check_statistics(nan, REFERENCE_STATISTICS, source="w")
