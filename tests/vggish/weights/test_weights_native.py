"""The native safetensors format, PCA files, format detection, and synthetic weights."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
import safetensors.numpy

from audioembed.errors import InvalidOptionError, WeightsFormatError, WeightsNotFoundError
from audioembed.vggish import params
from audioembed.vggish.weights import (
    detect_format,
    read_native,
    read_pca_npz,
    read_weights,
    synthesize_pca,
    synthesize_weights,
    write_native,
)
from audioembed.vggish.weights.native import OUTPUT_MAJOR, check_model_tensors


def _zeros() -> dict[str, np.ndarray]:
    """Correctly shaped stand-ins that take no memory (zero strides)."""
    return {v.tf_name: np.broadcast_to(np.float32(0), v.shape) for v in params.VARIABLES}


# --- native -------------------------------------------------------------------------------------


def test_native_round_trip_with_pca_and_metadata(full_files, synthetic_tensors, synthetic_pca):
    tensors, pca, metadata = read_native(full_files["native"])
    assert list(tensors) == [v.tf_name for v in params.VARIABLES] or set(tensors) == set(synthetic_tensors)
    for name, expected in synthetic_tensors.items():
        np.testing.assert_array_equal(tensors[name], expected)
    np.testing.assert_array_equal(pca["pca_eigen_vectors"], synthetic_pca["pca_eigen_vectors"])
    assert pca["pca_means"].dtype == np.float64
    assert metadata["format_version"] == "2"
    assert metadata["dense_kernels"] == "output-major"
    assert metadata["architecture"] == "vggish"
    assert metadata["synthetic"] == "true"
    assert metadata["has_pca"] == "true"


def test_native_tensors_are_read_only_views_of_one_memory_map(full_files):
    tensors, _, _ = read_native(full_files["native"])
    fc1 = tensors["vggish/fc1/fc1_1/weights"]
    assert not fc1.flags.writeable
    base = fc1
    while base.base is not None and not isinstance(base, np.memmap):
        base = base.base
    assert isinstance(base, np.memmap)


def test_native_files_are_plain_safetensors(full_files, synthetic_tensors):
    loaded = safetensors.numpy.load_file(full_files["native"])
    np.testing.assert_array_equal(loaded["vggish/conv1/weights"], synthetic_tensors["vggish/conv1/weights"])
    assert loaded["pca_means"].shape == (128,)
    # format 2: the dense kernels are stored output-major, [out, in]
    assert loaded["vggish/fc2/weights"].shape == (128, 4096)
    np.testing.assert_array_equal(loaded["vggish/fc2/weights"], synthetic_tensors["vggish/fc2/weights"].T)


def test_native_dense_kernels_read_back_in_tf_shapes_as_f_contiguous_views(full_files, synthetic_tensors):
    tensors, _, _ = read_native(full_files["native"])
    assert {"vggish/fc1/fc1_1/weights", "vggish/fc1/fc1_2/weights", "vggish/fc2/weights"} == OUTPUT_MAJOR
    for name in OUTPUT_MAJOR:
        assert tensors[name].shape == synthetic_tensors[name].shape
        assert tensors[name].flags.f_contiguous and not tensors[name].flags.c_contiguous
        np.testing.assert_array_equal(tensors[name], synthetic_tensors[name])
    assert tensors["vggish/conv4/conv4_2/weights"].flags.c_contiguous


def test_format_1_files_are_still_read(tmp_path, synthetic_tensors):
    """Files written before format 2 (every tensor in its TF layout) load as they did."""
    path = tmp_path / "v1.safetensors"
    metadata = {"architecture": "vggish", "format_version": "1", "synthetic": "true", "has_pca": "false"}
    safetensors.numpy.save_file(dict(synthetic_tensors), path, metadata=metadata)
    tensors, pca, read_metadata = read_native(path)
    assert pca is None and read_metadata["format_version"] == "1"
    for name, expected in synthetic_tensors.items():
        assert tensors[name].flags.c_contiguous
        np.testing.assert_array_equal(tensors[name], expected)


def test_format_2_dense_kernel_stored_in_tf_layout_is_refused(tmp_path, synthetic_tensors):
    path = tmp_path / "bad.safetensors"
    metadata = {"architecture": "vggish", "format_version": "2", "synthetic": "true", "has_pca": "false"}
    safetensors.numpy.save_file(dict(synthetic_tensors), path, metadata=metadata)  # nothing transposed
    with pytest.raises(WeightsFormatError, match=r"vggish/fc\S* is stored with shape \[\d+, \d+\], expected"):
        read_native(path)


def test_weights_file_describes_a_native_file(full_files):
    weights = read_weights(full_files["native"])
    assert weights.format == "native"
    assert weights.synthetic and weights.has_model
    assert len(weights.sha256) == 64
    weights.release_tensors()
    assert not weights.tensors and weights.pca is not None


def test_write_native_without_pca_and_with_umask_permissions(tmp_path):
    path = write_native(tmp_path / "w.safetensors", _zeros(), metadata={"source_file": "zeros"})
    _, pca, metadata = read_native(path)
    assert pca is None and metadata["has_pca"] == "false" and metadata["synthetic"] == "false"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temporary left behind


def test_write_native_refuses_bad_tensors(tmp_path):
    bad = _zeros()
    bad["vggish/fc2/biases"] = np.zeros(127, np.float32)
    with pytest.raises(WeightsFormatError, match=r"vggish/fc2/biases has shape \[127\], expected \[128\]"):
        write_native(tmp_path / "x.safetensors", bad, metadata={})
    bad["vggish/fc2/biases"] = np.zeros(128, np.float64)
    with pytest.raises(WeightsFormatError, match="vggish/fc2/biases has dtype float64, expected float32"):
        write_native(tmp_path / "x.safetensors", bad, metadata={})
    bad["vggish/fc2/biases"] = np.full(128, np.nan, np.float32)
    with pytest.raises(WeightsFormatError, match="refusing to write vggish/fc2/biases: it holds non-finite"):
        write_native(tmp_path / "x.safetensors", bad, metadata={})
    del bad["vggish/fc2/biases"]
    with pytest.raises(WeightsFormatError, match=r"missing \['vggish/fc2/biases'\]"):
        write_native(tmp_path / "x.safetensors", bad, metadata={})
    with pytest.raises(WeightsFormatError, match="metadata values must be strings"):
        write_native(tmp_path / "x.safetensors", _zeros(), metadata={"seed": 3})
    assert not list(tmp_path.iterdir())


def test_check_model_tensors_names_unexpected_tensors():
    tensors = {**_zeros(), "vggish/fc3/weights": np.zeros(1, np.float32)}
    with pytest.raises(WeightsFormatError, match=r"unexpected \['vggish/fc3/weights'\]"):
        check_model_tensors(tensors, source="test")


@pytest.fixture
def small_native(tmp_path):
    """A small file with native metadata: the damage tested here is found before tensors are checked."""
    path = tmp_path / "n.safetensors"
    tensors = {
        "vggish/conv1/biases": np.zeros(64, np.float32),
        "vggish/conv2/biases": np.ones(128, np.float32),
    }
    safetensors.numpy.save_file(tensors, path, metadata={"architecture": "vggish", "format_version": "1"})
    return path


def test_native_missing_tensors(small_native):
    with pytest.raises(WeightsFormatError, match=r"not VGGish weights: missing \['vggish/conv1/weights'"):
        read_native(small_native)


def _rewrite_header(path, edit) -> None:
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    edit(header)
    encoded = json.dumps(header, separators=(",", ":")).encode().ljust(length)
    assert len(encoded) == length
    path.write_bytes(data[:8] + encoded + data[8 + length :])


def test_native_truncated(small_native):
    with open(small_native, "r+b") as file:
        file.truncate(small_native.stat().st_size - 100)
    with pytest.raises(WeightsFormatError, match=r"does not fit .* \(truncated\?\)"):
        read_native(small_native)


def test_native_of_another_architecture_or_version(small_native):
    _rewrite_header(small_native, lambda h: h["__metadata__"].update(architecture="resnet"))
    with pytest.raises(WeightsFormatError, match="architecture is 'resnet', expected 'vggish'"):
        read_native(small_native)
    _rewrite_header(
        small_native, lambda h: h["__metadata__"].update(architecture="vggish", format_version="9")
    )
    with pytest.raises(WeightsFormatError, match=r"version '9' is not supported .*reads versions 1, 2\)"):
        read_native(small_native)


def test_native_with_an_unsupported_dtype(small_native):
    _rewrite_header(small_native, lambda h: h["vggish/conv1/biases"].update(dtype="I8"))
    with pytest.raises(WeightsFormatError, match="bad header entry for 'vggish/conv1/biases'"):
        read_native(small_native)


def test_native_bad_header_length(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes((10**9).to_bytes(8, "little") + b"{}")
    with pytest.raises(WeightsFormatError, match="bad safetensors header length 1000000000"):
        read_native(path)


def test_generic_safetensors_file_is_not_vggish(tmp_path):
    path = tmp_path / "other.safetensors"
    safetensors.numpy.save_file({"w": np.zeros(3, np.float32)}, path)
    assert detect_format(path) == "native"
    with pytest.raises(WeightsFormatError, match="not an audioembed VGGish file"):
        read_weights(path)


# --- PCA ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("means_shape", [(128,), (128, 1), (1, 128)])
def test_pca_npz_means_in_every_published_shape(tmp_path, means_shape):
    rng = np.random.default_rng(0)
    eigen, means = rng.standard_normal((128, 128)), rng.standard_normal(means_shape).astype(np.float32)
    np.savez(tmp_path / "p.npz", pca_eigen_vectors=eigen, pca_means=means)
    pca = read_pca_npz(tmp_path / "p.npz")
    assert pca["pca_means"].shape == (128,) and pca["pca_means"].dtype == np.float64
    np.testing.assert_array_equal(pca["pca_means"], means.reshape(128))
    np.testing.assert_array_equal(pca["pca_eigen_vectors"], eigen)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"pca_eigen_vectors": np.eye(128)}, r"missing \['pca_means'\]"),
        (
            {"pca_eigen_vectors": np.eye(128), "pca_means": np.zeros(128), "x": np.zeros(1)},
            r"unexpected \['x'\]",
        ),
        (
            {"pca_eigen_vectors": np.eye(127), "pca_means": np.zeros(128)},
            r"shape \[127, 127\], expected \[128, 128\]",
        ),
        ({"pca_eigen_vectors": np.eye(128), "pca_means": np.zeros(129)}, r"pca_means has shape \[129\]"),
        (
            {"pca_eigen_vectors": np.eye(128, dtype=int), "pca_means": np.zeros(128)},
            "dtype int64, expected float",
        ),
        ({"pca_eigen_vectors": np.eye(128), "pca_means": np.full(128, np.inf)}, "pca_means holds non-finite"),
    ],
)
def test_bad_pca_npz(tmp_path, arrays, message):
    np.savez(tmp_path / "p.npz", **arrays)
    with pytest.raises(WeightsFormatError, match=message):
        read_pca_npz(tmp_path / "p.npz")


def test_pickled_npz_is_refused_without_unpickling(tmp_path):
    np.savez(
        tmp_path / "p.npz", pca_eigen_vectors=np.array([{"a": 1}], dtype=object), pca_means=np.zeros(128)
    )
    with pytest.raises(WeightsFormatError, match=r"not a readable \.npz of numeric arrays"):
        read_pca_npz(tmp_path / "p.npz")


def test_truncated_npz(tmp_path, full_files):
    path = tmp_path / "cut.npz"
    path.write_bytes(full_files["npz"].read_bytes()[:5000])
    with pytest.raises(WeightsFormatError, match="corrupted zip container"):
        read_weights(path)


def test_pca_npz_through_read_weights(full_files, synthetic_pca):
    weights = read_weights(full_files["npz"])
    assert weights.format == "npz" and not weights.has_model
    np.testing.assert_array_equal(weights.pca["pca_means"], synthetic_pca["pca_means"])


# --- detection --------------------------------------------------------------------------------------


def test_detection_by_bytes_not_names(full_files, tiny_checkpoint, tmp_path):
    assert detect_format(full_files["npz"]) == "npz"
    assert detect_format(tiny_checkpoint) == "tf-checkpoint"
    renamed = tmp_path / "weights.pth"
    renamed.write_bytes(tiny_checkpoint.read_bytes())
    assert detect_format(renamed) == "tf-checkpoint"


def test_unknown_bytes_are_shown(tmp_path):
    path = tmp_path / "mystery.ckpt"
    path.write_bytes(b"GIF89a" + bytes(100))
    with pytest.raises(
        WeightsFormatError, match="unknown weights format \\(first bytes 47 49 46 38 39 61 00"
    ):
        detect_format(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        detect_format(tmp_path / "nope.ckpt")
    with pytest.raises(WeightsFormatError, match="is a directory"):
        detect_format(tmp_path)


def test_zip_that_is_neither_npz_nor_torch(tmp_path):
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(WeightsFormatError, match=r"neither a PyTorch file nor a \.npz"):
        detect_format(path)


# --- synthetic --------------------------------------------------------------------------------------


def test_synthetic_weights_depend_on_the_seed_and_are_he_scaled(synthetic_tensors):
    # Same seed, same weights: test_weights_cli.py compares `weights synth --seed 11` with this fixture.
    other = synthesize_weights(12)
    assert not np.array_equal(other["vggish/conv1/weights"], synthetic_tensors["vggish/conv1/weights"])
    for variable in params.VARIABLES:
        value = synthetic_tensors[variable.tf_name]
        assert value.shape == variable.shape and value.dtype == np.float32
    # He: std = sqrt(2 / fan_in) before a ReLU; sqrt(1 / fan_in) for fc2, which has none.
    assert synthetic_tensors["vggish/conv4/conv4_2/weights"].std() == pytest.approx(
        np.sqrt(2 / 4608), rel=0.01
    )
    assert synthetic_tensors["vggish/fc1/fc1_1/weights"].std() == pytest.approx(np.sqrt(2 / 12288), rel=0.01)
    assert synthetic_tensors["vggish/fc2/weights"].std() == pytest.approx(np.sqrt(1 / 4096), rel=0.01)


def test_synthetic_pca_is_a_scaled_rotation():
    pca = synthesize_pca(3)
    eigen = pca["pca_eigen_vectors"]
    assert eigen.dtype == np.float64 and pca["pca_means"].shape == (128,)
    scale = np.sqrt((eigen @ eigen.T)[0, 0])
    np.testing.assert_allclose(eigen @ eigen.T, scale**2 * np.eye(128), atol=1e-12)
    np.testing.assert_array_equal(synthesize_pca(3)["pca_means"], pca["pca_means"])


@pytest.mark.parametrize("seed", [-1, 1.5, True, "3"])
def test_bad_seeds(seed):
    with pytest.raises(InvalidOptionError, match="seed must be a non-negative integer"):
        synthesize_weights(seed)
    with pytest.raises(InvalidOptionError, match="seed must be a non-negative integer"):
        synthesize_pca(seed)
