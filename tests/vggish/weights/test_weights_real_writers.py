"""The readers against files written by the real TensorFlow and PyTorch (committed small fixtures).

``scripts/make_weight_fixtures.py`` wrote them with ``tf.compat.v1.train.Saver(write_version=V1)``
and ``torch.save`` (legacy and zip containers); every value is a formula of its index, recomputed here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from audioembed.errors import WeightsFormatError
from audioembed.vggish.weights import detect_format, read_tf_checkpoint, read_torch_file, read_weights

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "weights"


def _script():
    spec = importlib.util.spec_from_file_location(
        "make_weight_fixtures", ROOT / "scripts" / "make_weight_fixtures.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports only numpy at module level
    return module


SCRIPT = _script()
values = SCRIPT.fixture_values


def test_fixtures_are_small():
    for path in FIXTURES.iterdir():
        assert path.stat().st_size < 200_000, path.name


def test_tensorflow_v1_saver_file():
    path = FIXTURES / "tf_saver_v1.ckpt"
    assert detect_format(path) == "tf-checkpoint"
    tensors = read_tf_checkpoint(path)
    assert sorted(tensors) == sorted(SCRIPT.TF_VARIABLES)
    for name, (shape, dtype, salt) in SCRIPT.TF_VARIABLES.items():
        assert tensors[name].dtype == np.dtype(dtype), name
        np.testing.assert_array_equal(tensors[name], values(shape, dtype, salt), err_msg=name)


@pytest.mark.parametrize(
    ("name", "container"), [("torch_legacy.pth", "torch-legacy"), ("torch_zip.pth", "torch-zip")]
)
def test_torch_save_files(name, container):
    path = FIXTURES / name
    assert detect_format(path) == container
    arrays = read_torch_file(path)
    base = values((48, 40), "float32", 11)
    expected = {
        "features.0.weight": values((64, 1, 3, 3), "float32", 12),
        "embeddings.4.bias": values((128,), "float32", 13),
        "base": base,
        "transposed": base.T,
        "offset_rows": base[5:9],
        "every_third_column": base[:, ::3],
        "doubles": values((3, 4), "float64", 14),
        "longs": values((5,), "int64", 15),
        # bfloat16 keeps 8 bits of mantissa: these multiples of 1/8 below 16 are exact in it.
        "bfloat16": values((6,), "float32", 16),
        "halves": values((7,), "float16", 17),
    }
    assert list(arrays) == list(expected)
    for key, value in expected.items():
        assert arrays[key].dtype == value.dtype, key
        np.testing.assert_array_equal(arrays[key], value, err_msg=key)


def test_torch_save_of_numpy_arrays():
    path = FIXTURES / "torch_numpy_pca.pth"
    arrays = read_torch_file(path)
    np.testing.assert_array_equal(arrays["pca_eigen_vectors"], values((16, 16), "float64", 18))
    np.testing.assert_array_equal(arrays["pca_means"], values((16, 1), "float64", 19))


def test_tensorflow_v2_checkpoint_is_recognised_and_refused():
    prefix = FIXTURES / "tf_saver_v2.ckpt"
    for path, message in [
        (Path(f"{prefix}.index"), "the .index file of a TensorFlow V2 checkpoint"),
        (Path(f"{prefix}.data-00000-of-00001"), "a data shard of a TensorFlow V2 checkpoint"),
        (prefix, "the prefix of a TensorFlow V2 checkpoint"),
    ]:
        with pytest.raises(WeightsFormatError, match=message):
            detect_format(path)
        with pytest.raises(WeightsFormatError, match="audioembed weights download"):
            read_weights(path)
