"""The safe ``.pth`` reader: legacy and zip containers, tensor geometry, the port mapping, and refusal
of every pickle that would run code."""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile

import numpy as np
import pytest
from weights_writers import FakeStorage, FakeTensor, write_torch_legacy, write_torch_zip

from audioembed.errors import UnsafePickleError, WeightsFormatError
from audioembed.vggish import params
from audioembed.vggish.weights import detect_format, read_torch_file, read_weights
from audioembed.vggish.weights.torch_pickle import LEGACY_PREFIX
from audioembed.vggish.weights.torch_port import (
    HWIO_TO_OIHW,
    OIHW_TO_HWIO,
    PORT_TENSORS,
    port_to_tf,
)

WRITERS = {"legacy": write_torch_legacy, "zip": write_torch_zip}


def _strided_state() -> tuple[collections.OrderedDict, dict[str, np.ndarray]]:
    """Tensors that share one storage, with offsets and non-contiguous strides, and what they hold."""
    shared = FakeStorage("0", np.arange(40, dtype=np.float32))
    state = collections.OrderedDict(
        transposed=FakeTensor(shared, 2, (3, 4), (1, 3)),  # a .t() view starting at element 2
        every_fifth=FakeTensor(shared, 0, (8,), (5,)),
        scalar=FakeTensor(shared, 39, (), ()),
        empty=FakeTensor(shared, 0, (0, 3), (3, 1)),
        doubles=FakeTensor(FakeStorage("1", np.linspace(0, 1, 6)), 0, (2, 3), (3, 1)),
        longs=FakeTensor(FakeStorage("2", np.array([-5, 2**40], np.int64)), 0, (2,), (1,)),
        bf16=FakeTensor(
            FakeStorage("3", np.array([0x3F80, 0xC040], np.uint16), "BFloat16Storage"), 0, (2,), (1,)
        ),
        half=FakeTensor(FakeStorage("4", np.array([1.5, -2], np.float16), "HalfStorage"), 0, (2,), (1,)),
    )
    base = np.arange(40, dtype=np.float32)
    expected = {
        "transposed": np.lib.stride_tricks.as_strided(base[2:], (3, 4), (4, 12)).copy(),
        "every_fifth": base[::5].copy(),
        "scalar": np.array(39, np.float32),
        "empty": np.zeros((0, 3), np.float32),
        "doubles": np.linspace(0, 1, 6).reshape(2, 3),
        "longs": np.array([-5, 2**40], np.int64),
        "bf16": np.array([1.0, -3.0], np.float32),
        "half": np.array([1.5, -2], np.float16),
    }
    return state, expected


@pytest.mark.parametrize("container", ["legacy", "zip"])
def test_offsets_strides_and_shared_storages_are_honoured(tmp_path, container):
    state, expected = _strided_state()
    arrays = read_torch_file(WRITERS[container](tmp_path / "t.pth", state))
    assert list(arrays) == list(expected)
    for name, value in expected.items():
        assert arrays[name].dtype == value.dtype, name
        np.testing.assert_array_equal(arrays[name], value)
        assert arrays[name].flags.c_contiguous
    # Tensors that shared a storage do not alias each other after reading.
    assert not np.shares_memory(arrays["transposed"], arrays["every_fifth"])


@pytest.mark.parametrize("container", ["legacy", "zip"])
def test_numpy_arrays_inside_the_pickle(tmp_path, container):
    pca = {"pca_eigen_vectors": np.eye(3) * 2.5, "pca_means": np.arange(3, dtype=np.float32)}
    arrays = read_torch_file(WRITERS[container](tmp_path / "np.pth", pca))
    np.testing.assert_array_equal(arrays["pca_eigen_vectors"], pca["pca_eigen_vectors"])
    np.testing.assert_array_equal(arrays["pca_means"], pca["pca_means"])


def test_container_detected_by_bytes(tmp_path):
    state, _ = _strided_state()
    assert detect_format(write_torch_legacy(tmp_path / "a.zip", state)) == "torch-legacy"
    assert detect_format(write_torch_zip(tmp_path / "b.ckpt", state)) == "torch-zip"
    assert (tmp_path / "a.zip").read_bytes().startswith(LEGACY_PREFIX)


def test_out_of_bounds_geometry_is_an_error(tmp_path):
    storage = FakeStorage("0", np.arange(10, dtype=np.float32))
    state = {"bad": FakeTensor(storage, 4, (2, 4), (4, 1))}  # last element index 4 + 7 = 11 > 9
    for writer in WRITERS.values():
        with pytest.raises(WeightsFormatError, match=r"reaches element 11 of a 10-element storage"):
            read_torch_file(writer(tmp_path / "oob.pth", state))


def test_negative_strides_are_an_error(tmp_path):
    storage = FakeStorage("0", np.arange(10, dtype=np.float32))
    path = write_torch_legacy(tmp_path / "neg.pth", {"bad": FakeTensor(storage, 9, (3,), (-1,))})
    with pytest.raises(WeightsFormatError, match="bad tensor geometry"):
        read_torch_file(path)


def test_truncated_legacy_file(tmp_path):
    state, _ = _strided_state()
    path = write_torch_legacy(tmp_path / "t.pth", state)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(WeightsFormatError, match="truncated"):
        read_torch_file(path)
    path.write_bytes(path.read_bytes()[:60])  # cut inside the pickles
    with pytest.raises(WeightsFormatError, match="truncated or corrupted torch file"):
        read_torch_file(path)


def test_truncated_zip_file(tmp_path):
    state, _ = _strided_state()
    path = write_torch_zip(tmp_path / "t.pth", state)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(WeightsFormatError, match="corrupted zip container"):
        read_torch_file(path)


def test_zip_storage_of_the_wrong_size(tmp_path):
    state, _ = _strided_state()
    good = write_torch_zip(tmp_path / "good.pth", state)
    bad = tmp_path / "bad.pth"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(bad, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data[:-4] if info.filename == "archive/data/0" else data)
    with pytest.raises(WeightsFormatError, match="archive/data/0 holds 156 bytes, expected 40 × 4"):
        read_torch_file(bad)


def test_big_endian_legacy_file_is_refused(tmp_path):
    state, _ = _strided_state()
    path = write_torch_legacy(tmp_path / "be.pth", state, sys_info={"little_endian": False})
    with pytest.raises(WeightsFormatError, match="only little-endian"):
        read_torch_file(path)


def test_a_pickle_of_something_other_than_a_dict(tmp_path):
    path = write_torch_legacy(tmp_path / "list.pth", [1, 2])
    with pytest.raises(WeightsFormatError, match="holds a list, expected a dict of tensors"):
        read_torch_file(path)
    path = write_torch_legacy(tmp_path / "str.pth", {"a": "text"})
    with pytest.raises(WeightsFormatError, match="entry 'a' is a str"):
        read_torch_file(path)


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "x.pth"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with pytest.raises(WeightsFormatError, match="is not a PyTorch file"):
        read_torch_file(path)


# --- malicious pickles ------------------------------------------------------------------------------


def _legacy_with(payload: bytes, *, position: int = 3) -> bytes:
    """A legacy file whose pickle number ``position`` (0-based) is ``payload``."""
    parts = [
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2),
        pickle.dumps({}, protocol=2),
        pickle.dumps([], protocol=2),
    ]
    parts[position] = payload
    return b"".join(parts)


def _global_call(module: str, name: str, argument: str) -> bytes:
    """Protocol-2 pickle opcodes for ``module.name(argument)``."""
    arg = argument.encode()
    return (
        b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X" + struct.pack("<I", len(arg)) + arg + b"\x85R."
    )


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("subprocess", "Popen"),
        ("builtins", "getattr"),
        ("torch", "load"),
        ("numpy", "load"),
        ("torch._utils", "_rebuild_tensor"),  # a real torch name, just not on the list
    ],
)
def test_code_running_globals_are_refused_by_name(tmp_path, module, name):
    marker = tmp_path / "pwned"
    payload = _global_call(
        module, name, f"open({str(marker)!r}, 'w')" if name == "eval" else f"touch {marker}"
    )
    for position in (2, 3):  # the sys_info pickle and the object pickle
        path = tmp_path / f"evil{position}.pth"
        path.write_bytes(_legacy_with(payload, position=position))
        with pytest.raises(UnsafePickleError, match=rf"refusing to unpickle global {module}\.{name}"):
            read_torch_file(path)
        with pytest.raises(UnsafePickleError):
            read_weights(path)
    assert not marker.exists()


def test_malicious_global_nested_in_a_state_dict_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("true",))

    payload = pickle.dumps(collections.OrderedDict(weight=Evil()), protocol=2)
    path = tmp_path / "nested.pth"
    path.write_bytes(_legacy_with(payload))
    with pytest.raises(UnsafePickleError, match=r"global (os|posix)\.system"):
        read_torch_file(path)


def test_malicious_data_pkl_in_a_zip_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", _global_call("builtins", "eval", "1+1"))
        archive.writestr("archive/version", "3\n")
    assert detect_format(path) == "torch-zip"
    with pytest.raises(UnsafePickleError, match=r"builtins\.eval"):
        read_torch_file(path)


def test_object_arrays_are_refused(tmp_path):
    payload = pickle.dumps({"x": np.array([1, "a"], dtype=object)}, protocol=2)
    path = tmp_path / "objects.pth"
    path.write_bytes(_legacy_with(payload))
    with pytest.raises(UnsafePickleError, match="object dtype"):
        read_torch_file(path)


def test_codecs_encode_is_allowed_only_for_latin1_bytes(tmp_path):
    payload = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R."
    path = tmp_path / "codec.pth"
    path.write_bytes(_legacy_with(payload))
    with pytest.raises(UnsafePickleError, match=r"_codecs\.encode called with str, 'rot13'"):
        read_torch_file(path)


def test_unexpected_persistent_id(tmp_path):
    payload = b"\x80\x02X\x03\x00\x00\x00abcQ."  # BINPERSID of a plain string
    path = tmp_path / "pid.pth"
    path.write_bytes(_legacy_with(payload))
    with pytest.raises(WeightsFormatError, match="unexpected persistent id 'abc'"):
        read_torch_file(path)


# --- the port's keys and layouts -----------------------------------------------------------------


def test_the_mapping_table_covers_every_variable_once():
    assert sorted(row.tf_name for row in PORT_TENSORS) == sorted(v.tf_name for v in params.VARIABLES)
    assert len({row.port_key for row in PORT_TENSORS}) == 18
    assert tuple(np.argsort(OIHW_TO_HWIO)) == HWIO_TO_OIHW


def test_port_layouts_are_transposed_to_tf_layouts():
    # The small tensors by hand; the full conversion runs on the full-size files below.
    rng = np.random.default_rng(0)
    rows = {row.port_key: row for row in PORT_TENSORS}
    conv_port = rng.standard_normal((128, 64, 3, 3)).astype(np.float32)  # OIHW
    conv_tf = conv_port.transpose(rows["features.3.weight"].to_tf_axes)
    assert conv_tf.shape == params.VARIABLES_BY_TF_NAME["vggish/conv2/weights"].shape
    assert conv_tf[2, 1, 7, 5] == conv_port[5, 7, 2, 1]  # TF [kh, kw, in, out] == port [out, in, kh, kw]
    dense_port = rng.standard_normal((128, 4096)).astype(np.float32)  # [out, in]
    dense_tf = dense_port.transpose(rows["embeddings.4.weight"].to_tf_axes)
    assert dense_tf.shape == (4096, 128) and dense_tf[10, 3] == dense_port[3, 10]
    assert rows["embeddings.4.bias"].to_tf_axes is None
    assert rows["features.13.weight"].tf_name == "vggish/conv4/conv4_2/weights"


def test_port_state_dict_with_missing_or_extra_keys():
    port = {row.port_key: np.zeros(1, np.float32) for row in PORT_TENSORS}
    del port["features.0.bias"]
    port["features.1.weight"] = np.zeros(1, np.float32)
    with pytest.raises(
        WeightsFormatError, match=r"missing \['features.0.bias'\], unexpected \['features.1.weight'\]"
    ):
        port_to_tf(port)


def test_port_tensor_of_the_wrong_shape():
    port = {row.port_key: np.zeros(1, np.float32) for row in PORT_TENSORS}
    with pytest.raises(
        WeightsFormatError, match=r"features.0.weight has shape \[1\], expected \[64, 1, 3, 3\]"
    ):
        port_to_tf(port)


@pytest.mark.parametrize("kind", ["torch-legacy", "torch-zip"])
def test_full_size_port_files_read_as_tf_tensors(full_files, synthetic_tensors, kind):
    # The files were written from tf_to_port's output: this is a round trip through both directions.
    weights = read_weights(full_files[kind])
    assert weights.format == kind
    assert weights.pca is None
    for name, expected in synthetic_tensors.items():
        np.testing.assert_array_equal(weights.tensors[name], expected)


def test_port_pca_file(full_files, synthetic_pca):
    weights = read_weights(full_files["pca-pth"])
    assert not weights.has_model
    np.testing.assert_array_equal(weights.pca["pca_eigen_vectors"], synthetic_pca["pca_eigen_vectors"])


def test_a_torch_file_of_something_else(tmp_path):
    path = write_torch_legacy(tmp_path / "other.pth", {"w": np.zeros(2)})
    with pytest.raises(WeightsFormatError, match=r"neither the VGGish PyTorch port's weights nor PCA"):
        read_weights(path)


def test_legacy_storages_are_read_in_key_list_order(tmp_path):
    # Keys "10" and "9" sort as strings ("10" < "9"): the data must follow the list, not numeric order.
    state = {
        "a": FakeTensor(FakeStorage("9", np.array([9.0], np.float32)), 0, (1,), (1,)),
        "b": FakeTensor(FakeStorage("10", np.array([10.0, 11.0], np.float32)), 0, (2,), (1,)),
    }
    arrays = read_torch_file(write_torch_legacy(tmp_path / "order.pth", state))
    assert arrays["a"].tolist() == [9.0] and arrays["b"].tolist() == [10.0, 11.0]


def test_restricted_unpickler_allows_an_ordered_dict_with_metadata():
    state = collections.OrderedDict(x=np.ones(2))
    state._metadata = collections.OrderedDict({"": {"version": 1}})
    from audioembed.vggish.weights.torch_unpickler import RestrictedUnpickler

    loaded = RestrictedUnpickler(io.BytesIO(pickle.dumps(state, protocol=2)), source="mem").load()
    assert list(loaded) == ["x"] and loaded._metadata == {"": {"version": 1}}
