"""The allow-list unpickler for PyTorch files: what a ``.pth`` pickle may name, and nothing else.

``docs/weight-formats.md`` §B.4: the state-dict container, the tensor rebuild functions, typed
storages, NumPy's array reconstruction and ``_codecs.encode`` (protocol-2 bytes). Any other global,
such as ``os.system`` or ``builtins.eval``, raises :class:`~audioembed.errors.UnsafePickleError` naming
it before anything runs. Tensors come out as placeholders (:class:`PendingTensor`) that the container
readers in :mod:`.torch_pickle` fill once the storage bytes are located.
"""

from __future__ import annotations

import codecs
import collections
import io
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from audioembed.errors import AudioEmbedError, UnsafePickleError, WeightsFormatError

# What the pickle machine raises on a corrupted (not hostile) stream: a wrong type on its stack, a missing
# memo entry, an absurd size. Found by fuzzing (tests/fuzz); each is a corrupted file, not a bug of ours.
CORRUPT_PICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    struct.error,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    MemoryError,
    RecursionError,
    OverflowError,
)
MAX_RECONSTRUCT_ELEMENTS = 1 << 20  # numpy pickles _reconstruct an empty array; BUILD then sizes it


@dataclass(frozen=True)
class StorageType:
    """A ``torch.<Name>Storage`` class as the unpickler sees it: which NumPy dtype its bytes hold."""

    name: str
    dtype: np.dtype  # raw element type on disk (bfloat16 is read as uint16, widened later)
    bfloat16: bool = False


_STORAGE_TYPES = {
    name: StorageType(name, np.dtype(code), name == "BFloat16Storage")
    for name, code in {
        "FloatStorage": "<f4",
        "DoubleStorage": "<f8",
        "HalfStorage": "<f2",
        "LongStorage": "<i8",
        "IntStorage": "<i4",
        "ShortStorage": "<i2",
        "CharStorage": "i1",
        "ByteStorage": "u1",
        "BoolStorage": "?",
        "BFloat16Storage": "<u2",
    }.items()
}


@dataclass
class StorageRef:
    """A storage named by a persistent id: its key, element type and element count."""

    key: str
    kind: StorageType
    numel: int
    view: tuple[str, int, int] | None = None  # legacy storage views: (root key, offset, size)


@dataclass
class PendingTensor:
    """A tensor whose storage bytes are not located yet (legacy files put them after the pickle)."""

    storage: StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: Any, storage_offset: Any, size: Any, stride: Any, *_ignored: Any
) -> PendingTensor:
    # requires_grad, backward_hooks and metadata mean nothing for inference weights.
    if not isinstance(storage, StorageRef):
        raise WeightsFormatError(f"tensor rebuilt from {type(storage).__name__}, not a storage")
    try:
        return PendingTensor(storage, int(storage_offset), tuple(map(int, size)), tuple(map(int, stride)))
    except (TypeError, ValueError) as error:
        raise WeightsFormatError(f"bad tensor geometry: size {size!r}, stride {stride!r}") from error


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> Any:
    return data  # a Parameter is its tensor


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    # Protocol-2 pickles spell bytes as _codecs.encode(str, "latin1"); allow exactly that use.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode called with {type(text).__name__}, {encoding!r}")
    return codecs.encode(text, "latin1")


def _numpy_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    dtype = np.dtype(spec)
    if dtype.hasobject:
        raise UnsafePickleError(f"refusing NumPy object dtype {spec!r} (it would unpickle arbitrary objects)")
    return dtype


def _reconstruct(cls: Any, shape: Any, dtype_char: Any) -> np.ndarray:
    # numpy's _reconstruct(ndarray, (0,), b"b") makes an empty array that BUILD then fills from bytes.
    if cls is not np.ndarray:
        raise UnsafePickleError(f"numpy _reconstruct of {cls!r} refused: only numpy.ndarray is allowed")
    array = np.ndarray.__new__(np.ndarray, (0,), dtype_char)  # checks dtype_char before any allocation
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise WeightsFormatError(f"numpy _reconstruct with shape {shape!r}")
    if int(np.prod(shape, dtype=object)) > MAX_RECONSTRUCT_ELEMENTS:  # exact: no int64 overflow
        raise WeightsFormatError(f"numpy _reconstruct with an absurd shape {shape!r}")
    return array if shape == (0,) else np.ndarray.__new__(np.ndarray, shape, dtype_char)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _numpy_dtype,
    ("_codecs", "encode"): _codecs_encode,
    **{("torch", name): kind for name, kind in _STORAGE_TYPES.items()},
}


class BoundedReader:
    """A binary file whose reads never ask for more than is left in it.

    A corrupted length field in a pickle (``BINBYTES`` of 4 GB) would otherwise make a buffered reader
    allocate that much before finding the file shorter.
    """

    def __init__(self, file: Any) -> None:
        self._file = file
        start = file.tell()
        self._end = file.seek(0, io.SEEK_END)
        file.seek(start)

    def _left(self, n: int | None) -> int:
        left = max(self._end - self._file.tell(), 0)
        return left if n is None or n < 0 else min(n, left)

    def read(self, n: int | None = -1) -> bytes:
        return self._file.read(self._left(n))

    def readline(self, n: int | None = -1) -> bytes:
        return self._file.readline(self._left(n))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self._file.tell()


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that resolves only allow-listed globals and hands persistent ids to a callback.

    It is Python's pure-Python unpickler (the C one sizes its memo from the file: a corrupted
    ``LONG_BINPUT`` index of a billion made it allocate gigabytes and run for a minute), reading through a
    :class:`BoundedReader`; any failure of a corrupted stream is a :class:`WeightsFormatError`.

    Parameters
    ----------
    file : binary file
        Positioned at the pickle.
    source : str
        Named in error messages (the file path).
    persistent : callable, optional
        ``persistent(pid) -> object`` for persistent ids; without it any persistent id is an error.
    """

    def __init__(self, file: Any, *, source: str, persistent: Callable[[Any], Any] | None = None) -> None:
        super().__init__(BoundedReader(file))
        self._source = source
        self._persistent = persistent

    def load(self) -> Any:
        try:
            return super().load()
        except AudioEmbedError:
            raise
        except CORRUPT_PICKLE_ERRORS as error:
            raise WeightsFormatError(
                f"{self._source}: truncated or corrupted torch file: its pickle fails with "
                f"{type(error).__name__}: {error}"
            ) from error

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refusing to unpickle global {module}.{name}: not a tensor, storage, "
                "state dict or NumPy array, and loading it could run code"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise WeightsFormatError(f"{self._source}: unexpected persistent id {pid!r}")
        return self._persistent(pid)
