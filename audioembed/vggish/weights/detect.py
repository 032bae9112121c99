"""Which weights format a file is, from its bytes (never its name)."""

from __future__ import annotations

import json
import re
import zipfile
from os import PathLike
from pathlib import Path

from audioembed.errors import WeightsFormatError, WeightsNotFoundError
from audioembed.vggish.weights import leveldb_table, tf_checkpoint, torch_pickle

NATIVE = "native"  # safetensors written by audioembed (or anything safetensors-shaped)
TF_V1 = "tf-checkpoint"  # TensorFlow V1 checkpoint (vggish_model.ckpt)
TORCH_LEGACY = "torch-legacy"  # torch.save(..., _use_new_zipfile_serialization=False)
TORCH_ZIP = "torch-zip"  # torch.save default since PyTorch 1.6
NPZ = "npz"  # numpy.savez (vggish_pca_params.npz)
FORMATS = (NATIVE, TF_V1, TORCH_LEGACY, TORCH_ZIP, NPZ)

_V2_DATA_NAME = re.compile(r"\.data-\d{5}-of-\d{5}$")
_V2_HINT = (
    "TensorFlow V2 checkpoints (.index + .data-*) are not supported: use the official V1 "
    "vggish_model.ckpt (`audioembed weights download`), or re-save with "
    "tf.compat.v1.train.Saver(write_version=tf.compat.v1.train.SaverDef.V1)"
)


def detect_format(path: str | PathLike[str]) -> str:
    """Identify a weights file by its magic bytes.

    Parameters
    ----------
    path : str or PathLike
        The file.

    Returns
    -------
    format : str
        One of :data:`FORMATS`.

    Raises
    ------
    WeightsNotFoundError
        The path does not exist (unless it is a V2 checkpoint prefix, see below).
    WeightsFormatError
        Unknown bytes (the message shows the first 16), or a TensorFlow V2 checkpoint (its prefix,
        ``.index`` or ``.data-*`` file), which is detected and refused with what to do instead.
    """
    path = Path(path)
    if not path.exists():
        if Path(f"{path}.index").exists():
            raise WeightsFormatError(f"{path} is the prefix of a TensorFlow V2 checkpoint. {_V2_HINT}")
        raise WeightsNotFoundError(f"weights file {str(path)!r} does not exist")
    if path.is_dir():
        raise WeightsFormatError(f"{path} is a directory, expected a weights file")
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(64)
        tail = b""
        if size >= leveldb_table.FOOTER_SIZE:
            file.seek(size - 8)
            tail = file.read(8)
    if _looks_like_safetensors(path, head, size):
        return NATIVE
    if head.startswith(torch_pickle.LEGACY_PREFIX):
        return TORCH_LEGACY
    if head.startswith(torch_pickle.ZIP_PREFIX):
        return _zip_kind(path)
    if tail == leveldb_table.TABLE_MAGIC:
        if tf_checkpoint.is_v2_index(path):
            raise WeightsFormatError(f"{path} is the .index file of a TensorFlow V2 checkpoint. {_V2_HINT}")
        return TF_V1
    if _V2_DATA_NAME.search(path.name):
        raise WeightsFormatError(f"{path} is a data shard of a TensorFlow V2 checkpoint. {_V2_HINT}")
    raise WeightsFormatError(
        f"{path}: unknown weights format (first bytes {head[:16].hex(' ')}); expected a native "
        ".safetensors, a TensorFlow V1 .ckpt, a PyTorch .pth or a .npz"
    )


def _looks_like_safetensors(path: Path, head: bytes, size: int) -> bool:
    # 8-byte little-endian header length, then a JSON object that fits in the file.
    if len(head) < 10 or head[8:9] != b"{":
        return False
    header_length = int.from_bytes(head[:8], "little")
    if header_length > size - 8:
        return False
    with open(path, "rb") as file:
        file.seek(8)
        try:
            json.loads(file.read(min(header_length, 100 * 1024 * 1024)))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return False
    return True


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except torch_pickle.ZIP_ERRORS as error:
        raise WeightsFormatError(f"{path}: corrupted zip container: {error}") from error
    if any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
        return TORCH_ZIP
    if names and all(name.endswith(".npy") for name in names):
        return NPZ
    raise WeightsFormatError(f"{path} is a zip but neither a PyTorch file nor a .npz (members: {names[:5]})")
