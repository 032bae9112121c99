"""Fuzz inputs: real encoded seed files (made with soundfile) and deterministic mutations of them.

Case ``i`` of a run is a pure function of ``(run seed, i)``, so a worker process rebuilds a case from its
index alone and a failure is replayed with ``scripts/fuzz.py --replay I``. The first cases of every run are
systematic (truncation at every header offset, each lying header field, NaN/Inf samples, odd raw PCM);
the rest are random stacks of byte-level mutations.
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soundfile

# (name, container, subtype, sample rate, channels): the formats the issue names, each a real file.
SEED_SPECS = (
    ("wav-u8", "WAV", "PCM_U8", 8000, 1),
    ("wav-s16", "WAV", "PCM_16", 8000, 1),
    ("wav-s16-stereo", "WAV", "PCM_16", 11025, 2),
    ("wav-s24", "WAV", "PCM_24", 8000, 1),
    ("wav-s32", "WAV", "PCM_32", 8000, 1),
    ("wav-f32", "WAV", "FLOAT", 8000, 1),
    ("wav-f64", "WAV", "DOUBLE", 8000, 1),
    ("flac-16", "FLAC", "PCM_16", 16000, 1),
    ("flac-24-stereo", "FLAC", "PCM_24", 22050, 2),
    ("ogg-vorbis", "OGG", "VORBIS", 16000, 1),
    ("mp3", "MP3", "MPEG_LAYER_III", 16000, 1),
    ("aiff-s16", "AIFF", "PCM_16", 8000, 1),
    ("aifc-f32", "AIFF", "FLOAT", 8000, 1),
)
SEED_SECONDS = 0.5  # shorter than one example: see fuzz_worker.PAD_EVERY
HEADER_SCAN_BYTES = 1024  # containers without a fixed header: truncate at every offset up to here
RATES_32 = (0, 1, 2, 7, 3999, 384001, 2**31 - 1, 2**31, 2**32 - 1)  # sample rates a header may claim
SIZES_32 = (0, 1, 7, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)  # chunk sizes a header may claim
CHANNELS_16 = (0, 3, 8, 255, 0xFFFF)
BITS_16 = (0, 1, 7, 12, 33, 64, 0xFFFF)
FORMAT_TAGS = (0, 2, 0x55, 0xFFFE, 0xFFFF)  # WAV: none, ADPCM, MP3, extensible without extension, junk
SPECIAL_FLOATS = (np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 1e-45)
PCM_RATES = (0, 1, 3999, 8000, 16000, 2**31, 2**32 - 1)


@dataclass(frozen=True)
class FuzzInput:
    """One case: encoded bytes, or raw PCM with the format a caller claims for it."""

    label: str  # seed and mutation, for reports
    data: bytes
    pcm: tuple[str, int, int] | None = None  # (encoding, sample rate, channels) for raw PCM


@functools.cache
def seeds() -> dict[str, bytes]:
    """Every seed file's bytes by name: a 440 Hz tone with a little noise, written by libsndfile."""
    out = {}
    for name, container, subtype, rate, channels in SEED_SPECS:
        t = np.arange(round(SEED_SECONDS * rate)) / rate
        tone = 0.4 * np.sin(2 * np.pi * 440.0 * t) + 0.05 * np.random.default_rng(1).standard_normal(t.size)
        samples = tone if channels == 1 else np.stack([tone, -tone], axis=1)  # [n] or [n, 2]
        buffer = io.BytesIO()
        soundfile.write(buffer, samples, rate, format=container, subtype=subtype)
        out[name] = buffer.getvalue()
    return out


def riff_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """``(id, offset of the size field, size)`` of each chunk of a RIFF (LE) or FORM (BE) file."""
    if data[:4] == b"RIFF":
        order, start = "<", 12
    elif data[:4] == b"FORM":
        order, start = ">", 12
    else:
        return []
    chunks, offset = [], start
    while offset + 8 <= len(data):
        size = struct.unpack_from(f"{order}I", data, offset + 4)[0]
        chunks.append((data[offset : offset + 4], offset + 4, size))
        offset += 8 + size + (size & 1)
    return chunks


def header_length(data: bytes) -> int:
    """Bytes before the first audio: RIFF/AIFF chunks, FLAC metadata, Ogg's first two pages (the Vorbis
    headers), else :data:`HEADER_SCAN_BYTES` (MP3: a few frames)."""
    for chunk_id, size_at, _ in riff_chunks(data):
        if chunk_id in (b"data", b"SSND"):
            return size_at + 4 + (8 if chunk_id == b"SSND" else 0)
    if data[:4] == b"fLaC":
        offset, last = 4, False
        while not last and offset + 4 <= len(data):
            last = bool(data[offset] & 0x80)
            offset += 4 + int.from_bytes(data[offset + 1 : offset + 4], "big")
        return min(offset, len(data))
    if data[:4] == b"OggS":
        offset = 0
        for _ in range(2):  # a page: 27-byte header, segment table, then the segments
            segments = data[offset + 26]
            offset += 27 + segments + sum(data[offset + 27 : offset + 27 + segments])
        return min(offset, len(data))
    return min(len(data), HEADER_SCAN_BYTES)


def _put(data: bytes, offset: int, fmt: str, value: int | float) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def _field_lies(name: str, data: bytes) -> list[FuzzInput]:
    """Each header field set to each value a hostile file might carry."""
    cases = []
    order = "<" if data[:4] == b"RIFF" else ">"
    for chunk_id, size_at, _ in [(b"RIFF", 4, 0), *riff_chunks(data)] if order == "<" else riff_chunks(data):
        for size in SIZES_32:
            cases.append(
                FuzzInput(f"{name}:size[{chunk_id.decode()}]={size}", _put(data, size_at, f"{order}I", size))
            )
        if chunk_id == b"fmt ":
            body = size_at + 4  # tag(2) channels(2) rate(4) byte rate(4) block align(2) bits(2)
            cases += [FuzzInput(f"{name}:tag={v}", _put(data, body, "<H", v)) for v in FORMAT_TAGS]
            cases += [FuzzInput(f"{name}:channels={v}", _put(data, body + 2, "<H", v)) for v in CHANNELS_16]
            cases += [FuzzInput(f"{name}:rate={v}", _put(data, body + 4, "<I", v)) for v in RATES_32]
            cases += [FuzzInput(f"{name}:byterate={v}", _put(data, body + 8, "<I", v)) for v in SIZES_32]
            cases += [FuzzInput(f"{name}:align={v}", _put(data, body + 12, "<H", v)) for v in BITS_16]
            cases += [FuzzInput(f"{name}:bits={v}", _put(data, body + 14, "<H", v)) for v in BITS_16]
        if chunk_id == b"COMM":
            body = size_at + 4  # channels(2) frames(4) bits(2) rate(80-bit extended)
            cases += [FuzzInput(f"{name}:channels={v}", _put(data, body, ">H", v)) for v in CHANNELS_16]
            cases += [FuzzInput(f"{name}:frames={v}", _put(data, body + 2, ">I", v)) for v in SIZES_32]
            cases += [FuzzInput(f"{name}:bits={v}", _put(data, body + 6, ">H", v)) for v in BITS_16]
            for rate in RATES_32:
                cases.append(
                    FuzzInput(f"{name}:rate={rate}", data[: body + 8] + _extended(rate) + data[body + 18 :])
                )
            for label, raw in (("inf", b"\x7f\xff\x80" + bytes(7)), ("nan", b"\x7f\xff\xc0" + bytes(7))):
                cases.append(FuzzInput(f"{name}:rate={label}", data[: body + 8] + raw + data[body + 18 :]))
    if data[:4] == b"fLaC":  # STREAMINFO at 8: 20-bit rate, 3-bit channels-1, 5-bit bits-1, 36-bit frames
        packed = int.from_bytes(data[18:26], "big")
        for label, shift, width, values in (
            ("rate", 44, 20, (0, 1, 2, 0xFFFFF)),
            ("channels-1", 41, 3, (7,)),
            ("bits-1", 36, 5, (0, 2, 31)),
            ("frames", 0, 36, (0, 1, (1 << 36) - 1)),
        ):
            for value in values:
                mask = ((1 << width) - 1) << shift
                new = (packed & ~mask) | (value << shift)
                cases.append(
                    FuzzInput(f"{name}:{label}={value}", data[:18] + new.to_bytes(8, "big") + data[26:])
                )
    return cases


def _extended(value: int) -> bytes:
    """``value`` as an 80-bit IEEE extended float (AIFF's sample-rate field)."""
    if value == 0:
        return bytes(10)
    exponent = value.bit_length() - 1
    return struct.pack(">HQ", 16383 + exponent, value << (63 - exponent))


def _special_samples(name: str, data: bytes) -> list[FuzzInput]:
    """NaN / Inf / huge / denormal samples written into a float file's data."""
    chunks = {chunk_id: (size_at, size) for chunk_id, size_at, size in riff_chunks(data)}
    if b"data" in chunks:
        (size_at, size), order = chunks[b"data"], "<"
        start = size_at + 4
    elif b"SSND" in chunks:
        (size_at, size), order = chunks[b"SSND"], ">"
        start, size = size_at + 12, size - 8
    else:
        return []
    width = 8 if "f64" in name else 4
    code = f"{order}{'d' if width == 8 else 'f'}"
    cases = []
    for value in SPECIAL_FLOATS:
        for where, positions in (
            ("first", [0]),
            ("middle", [size // width // 2]),
            ("all", range(size // width)),
        ):
            out = bytearray(data)
            for index in positions:
                struct.pack_into(code, out, start + index * width, value)
            cases.append(FuzzInput(f"{name}:sample[{where}]={value}", bytes(out)))
    return cases


def _raw_pcm_cases() -> list[FuzzInput]:
    """Raw PCM of odd and even lengths, in each encoding, with bad and good claimed formats."""
    rng = np.random.default_rng(5)
    cases = []
    for length in (0, 1, 2, 3, 5, 7, 4095, 16001, 32003):
        data = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
        for encoding in ("s16le", "f32le"):
            for channels in (0, 1, 2, 3):
                for rate in PCM_RATES:
                    cases.append(
                        FuzzInput(
                            f"pcm:{encoding}/{length}B/{channels}ch/{rate}Hz",
                            data,
                            (encoding, rate, channels),
                        )
                    )
    return cases


@functools.cache
def systematic_cases() -> tuple[FuzzInput, ...]:
    cases: list[FuzzInput] = []
    for name, data in seeds().items():
        cases.append(FuzzInput(f"{name}:intact", data))
        cases += [FuzzInput(f"{name}:truncate@{n}", data[:n]) for n in range(header_length(data) + 8)]
        cases += _field_lies(name, data)
        if name in ("wav-f32", "wav-f64", "aifc-f32"):
            cases += _special_samples(name, data)
    return tuple(cases + _raw_pcm_cases())


# --- random mutations -------------------------------------------------------------------------------------

Mutator = Callable[[bytearray, np.random.Generator], str]
INTERESTING_32 = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def _position(data: bytearray, rng: np.random.Generator) -> int:
    # Half of all edits land in the first 128 bytes, where parsers make their decisions.
    span = min(len(data), 128) if rng.random() < 0.5 else len(data)
    return int(rng.integers(0, max(span, 1)))


def _flip_bits(data: bytearray, rng: np.random.Generator) -> str:
    count = int(rng.integers(1, 17))
    for _ in range(count):
        if data:
            data[_position(data, rng)] ^= 1 << int(rng.integers(0, 8))
    return f"flip{count}"


def _set_word(data: bytearray, rng: np.random.Generator) -> str:
    if len(data) < 4:
        return "word-skip"
    at = min(_position(data, rng), len(data) - 4)
    value = int(rng.choice(INTERESTING_32))
    struct.pack_into("<I" if rng.random() < 0.5 else ">I", data, at, value)
    return f"word@{at}={value:#x}"


def _truncate(data: bytearray, rng: np.random.Generator) -> str:
    keep = int(rng.integers(0, len(data) + 1))
    del data[keep:]
    return f"cut@{keep}"


def _splice(data: bytearray, rng: np.random.Generator) -> str:
    """Insert, delete or duplicate a range."""
    if not data:
        return "splice-skip"
    start = _position(data, rng)
    length = int(rng.integers(1, 64))
    choice = int(rng.integers(0, 3))
    if choice == 0:
        data[start:start] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    elif choice == 1:
        del data[start : start + length]
    else:
        data[start:start] = data[start : start + length]
    return ("insert", "delete", "dup")[choice] + f"@{start}+{length}"


def _lie_chunk(data: bytearray, rng: np.random.Generator) -> str:
    chunks = riff_chunks(bytes(data))
    if not chunks:
        return _set_word(data, rng)
    chunk_id, size_at, size = chunks[int(rng.integers(0, len(chunks)))]
    value = int(rng.choice([*SIZES_32, max(size - 1, 0), size + 1, size * 2]))
    struct.pack_into("<I" if data[:4] == b"RIFF" else ">I", data, size_at, value & 0xFFFFFFFF)
    return f"size[{chunk_id!r}]={value}"


MUTATORS: tuple[Mutator, ...] = (_flip_bits, _flip_bits, _set_word, _truncate, _splice, _lie_chunk)


def random_case(run_seed: int, index: int) -> FuzzInput:
    rng = np.random.default_rng([run_seed, index])
    names = sorted(seeds())
    name = names[int(rng.integers(0, len(names)))]
    data = bytearray(seeds()[name])
    steps = [MUTATORS[int(rng.integers(0, len(MUTATORS)))](data, rng) for _ in range(int(rng.integers(1, 4)))]
    return FuzzInput(f"{name}:{'+'.join(steps)}", bytes(data))


def case(run_seed: int, index: int) -> FuzzInput:
    """Case ``index`` of run ``run_seed``: the systematic cases first, then random mutations."""
    fixed = systematic_cases()
    return fixed[index] if index < len(fixed) else random_case(run_seed, index)
