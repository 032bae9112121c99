"""CRC32C (Castagnoli), as LevelDB-style tables store it in every block trailer.

``google-crc32c`` (a C extension, hardware accelerated) is used when importable. Otherwise a
table-driven pure-Python CRC serves, but only for small blocks: at a few MB/s it would take minutes
over a 200 MB tensor, so callers skip large blocks when :data:`ACCELERATED` is false.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

try:
    import google_crc32c as _google_crc32c
except ImportError:  # pragma: no cover - depends on the environment
    _google_crc32c = None

_POLYNOMIAL = 0x82F63B78  # Castagnoli polynomial, bit-reflected
_MASK_DELTA = 0xA282EAD8  # LevelDB masks stored CRCs so a CRC of data holding CRCs stays well mixed
_CHUNK_BYTES = 1 << 23  # bytes copied per call into the C extension
PURE_PYTHON_LIMIT = 1 << 20  # bytes: the largest block the fallback verifies (~0.3 s)

ACCELERATED = _google_crc32c is not None


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLYNOMIAL if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc32c_python(data: bytes | memoryview, crc: int = 0) -> int:
    """CRC32C of ``data`` in pure Python. Slow: small inputs only.

    ``crc`` is the CRC of preceding bytes, so ``crc32c_python(b, crc32c_python(a)) == crc32c_python(a + b)``.
    """
    crc ^= 0xFFFFFFFF  # init and final XOR are 0xFFFFFFFF
    table = _TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32c(data: bytes | memoryview, crc: int = 0) -> int:
    """CRC32C of ``data`` continuing from ``crc``, accelerated when ``google-crc32c`` is installed."""
    if _google_crc32c is None:
        return crc32c_python(data, crc)
    # The C extension takes only ``bytes`` (no memoryview of an mmap), so feed it bounded copies
    # rather than one copy of a 200 MB block.
    view = memoryview(data)
    for start in range(0, len(view), _CHUNK_BYTES):
        crc = _google_crc32c.extend(crc, bytes(view[start : start + _CHUNK_BYTES]))
    return int(crc)


def can_verify(size: int) -> bool:
    """Whether a block of ``size`` bytes can be checked in reasonable time with what is installed."""
    return ACCELERATED or size <= PURE_PYTHON_LIMIT


def mask(crc: int) -> int:
    """LevelDB's masked form of a CRC: rotate right by 15 bits, add a constant (mod 2**32)."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    """Inverse of :func:`mask`."""
    rotated = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rotated >> 17) | (rotated << 15)) & 0xFFFFFFFF
