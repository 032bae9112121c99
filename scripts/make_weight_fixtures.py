"""Write small weight files with the *real* writers, for tests of the readers (dev-only).

Needs ``tensorflow-cpu`` and ``torch==2.13.0``, which audioembed itself never imports. Run from the
repository root::

    python scripts/make_weight_fixtures.py

It writes into ``tests/fixtures/weights/``:

- ``tf_saver_v1.ckpt``: ``tf.compat.v1.train.Saver(write_version=V1)`` of a few variables of several
  dtypes (float32 kernels named like VGGish's, float64, int32 with negatives, int64, bool, float16);
- ``torch_legacy.pth`` / ``torch_zip.pth``: ``torch.save`` of a state dict with the port's key names,
  non-contiguous and offset views sharing one storage, and float64 / int64 / bfloat16 / float16 tensors,
  in the legacy (``_use_new_zipfile_serialization=False``) and zip containers;
- ``torch_numpy_pca.pth``: ``torch.save`` of a dict of NumPy float64 arrays, as the port's PCA file is;
- ``tf_saver_v2.ckpt.index`` / ``.data-00000-of-00001``: a V2 checkpoint, to test that it is refused.

Every value is a formula of its index (see ``fixture_values``), so tests recompute what they should read
without TensorFlow or PyTorch. Each file stays far below 200 KB.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "weights"


def fixture_values(shape: tuple[int, ...], dtype: str, salt: int = 0) -> np.ndarray:
    """Deterministic values: ((i * 7 + salt) % 251 - 125) / 8 in C order, cast to ``dtype``."""
    index = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
    values = ((index * 7 + salt) % 251 - 125) / 8
    if np.dtype(dtype).kind in "iu":
        values = (index * 7 + salt) % 251 - 125
    if np.dtype(dtype).kind == "b":
        values = (index + salt) % 3 == 0
    return values.astype(dtype).reshape(shape)


TF_VARIABLES = {
    "vggish/conv1/weights": ((3, 3, 1, 64), "float32", 1),
    "vggish/conv1/biases": ((64,), "float32", 2),
    "vggish/fc2/weights": ((96, 128), "float32", 3),
    "scope/doubles": ((5, 4), "float64", 4),
    "scope/ints": ((3, 7), "int32", 5),
    "scope/longs": ((4,), "int64", 6),
    "scope/flags": ((6,), "bool", 7),
    "scope/halves": ((2, 5), "float16", 8),
}


def write_tf() -> None:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        for name, (shape, dtype, salt) in TF_VARIABLES.items():
            tf.compat.v1.get_variable(
                name, initializer=tf.constant(fixture_values(shape, dtype, salt)), use_resource=False
            )
        saver = tf.compat.v1.train.Saver(write_version=tf.compat.v1.train.SaverDef.V1)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(OUT / "tf_saver_v1.ckpt"), write_meta_graph=False, write_state=False)


def write_tf_v2() -> None:
    """A V2 checkpoint (``.index`` + ``.data-00000-of-00001``): the readers must recognise and refuse it."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.get_variable(
            "v", initializer=tf.constant(fixture_values((2, 3), "float32")), use_resource=False
        )
        saver = tf.compat.v1.train.Saver(write_version=tf.compat.v1.train.SaverDef.V2)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(OUT / "tf_saver_v2.ckpt"), write_meta_graph=False, write_state=False)


def torch_state():
    import torch

    base = torch.from_numpy(fixture_values((48, 40), "float32", 11))
    return {
        "features.0.weight": torch.from_numpy(fixture_values((64, 1, 3, 3), "float32", 12)),
        "embeddings.4.bias": torch.from_numpy(fixture_values((128,), "float32", 13)),
        "base": base,
        "transposed": base.t(),  # shares base's storage, strides (1, 40)
        "offset_rows": base[5:9],  # storage offset 200
        "every_third_column": base[:, ::3],  # non-contiguous, shares the storage
        "doubles": torch.from_numpy(fixture_values((3, 4), "float64", 14)),
        "longs": torch.from_numpy(fixture_values((5,), "int64", 15)),
        "bfloat16": torch.from_numpy(fixture_values((6,), "float32", 16)).to(torch.bfloat16),
        "halves": torch.from_numpy(fixture_values((7,), "float16", 17)),
    }


def write_torch() -> None:
    import torch

    state = torch_state()
    torch.save(state, OUT / "torch_legacy.pth", _use_new_zipfile_serialization=False)
    torch.save(state, OUT / "torch_zip.pth")
    pca = {
        "pca_eigen_vectors": fixture_values((16, 16), "float64", 18),
        "pca_means": fixture_values((16, 1), "float64", 19),
    }
    torch.save(pca, OUT / "torch_numpy_pca.pth", _use_new_zipfile_serialization=False)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    write_torch()
    write_tf()
    write_tf_v2()
    for path in sorted(OUT.iterdir()):
        print(f"{path.stat().st_size:>8} {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
