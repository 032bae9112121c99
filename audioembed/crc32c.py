"""CRC32C (Castagnoli): used by TFRecord framing and TensorFlow checkpoint blocks.

Uses the ``google-crc32c`` package's C implementation when it is installed (GB/s); otherwise a
table-driven pure-Python loop, fine for the kilobyte-sized records it is needed for (~5 MB/s).
"""

from __future__ import annotations

_POLYNOMIAL = 0x82F63B78  # reflected Castagnoli polynomial


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_POLYNOMIAL if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc32c_python(data: bytes | bytearray | memoryview) -> int:
    """CRC32C of ``data`` in pure Python (init and final XOR 0xFFFFFFFF)."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:
    import google_crc32c as _accelerated
except ImportError:  # pragma: no cover - depends on the environment
    _accelerated = None

HAS_ACCELERATED_CRC32C = _accelerated is not None and _accelerated.implementation == "c"


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC32C of ``data``: the C implementation when available, else :func:`crc32c_python`."""
    if HAS_ACCELERATED_CRC32C:
        return _accelerated.value(bytes(data))
    return crc32c_python(data)
