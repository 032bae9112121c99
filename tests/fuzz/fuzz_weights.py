"""Hostile and corrupted weight files: malicious pickles in every container, and mutated real files.

Every malicious payload, if it ever ran, would create the run's marker file (``touch MARKER`` by whatever
route the payload takes); the worker checks after every case that the marker does not exist. Case ``i``
is a pure function of ``(run seed, i, marker)``, like the audio cases.
"""

from __future__ import annotations

import functools
import io
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.numpy
from fuzz_inputs import MUTATORS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "weights"
LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)  # what torch.save writes first
LEGACY_VERSION = pickle.dumps(1001, protocol=2)
LEGACY_SYS_INFO = pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2)


@dataclass(frozen=True)
class WeightsInput:
    label: str
    file_name: str
    data: bytes


# --- pickle opcodes, written by hand so that nothing here ever imports or calls the payload -------------


def _text(value: str) -> bytes:
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"  # GLOBAL


def _call(callable_: bytes, *args: bytes) -> bytes:
    return callable_ + b"(" + b"".join(args) + b"tR"  # MARK args TUPLE REDUCE


def _list(*items: bytes) -> bytes:
    return b"](" + b"".join(items) + b"e"  # EMPTY_LIST MARK items APPENDS


def _program(body: bytes, protocol: int = 2) -> bytes:
    return b"\x80" + bytes([protocol]) + body + b"."  # PROTO body STOP


def payloads(marker: Path) -> dict[str, bytes]:
    """Pickles that would create ``marker`` if a loader executed them, by every route we know of."""
    m = str(marker)
    shell = f"touch {m}"
    python = f"open({m!r}, 'w').close()"
    nested = _program(_call(_global("os", "system"), _text(shell)))
    return {
        "os.system": _program(_call(_global("os", "system"), _text(shell))),
        "posix.system": _program(_call(_global("posix", "system"), _text(shell))),
        "builtins.eval": _program(_call(_global("builtins", "eval"), _text(python))),
        "builtins.exec": _program(_call(_global("builtins", "exec"), _text(python))),
        "__builtin__.eval (py2 name)": _program(_call(_global("__builtin__", "eval"), _text(python))),
        "subprocess.check_call": _program(
            _call(_global("subprocess", "check_call"), _list(_text("touch"), _text(m)))
        ),
        "subprocess.Popen via NEWOBJ": _program(
            _global("subprocess", "Popen") + b"(" + _list(_text("touch"), _text(m)) + b"t\x81"
        ),
        "nested reduce getattr(__import__('os'), 'system')": _program(
            _call(
                _call(
                    _global("builtins", "getattr"),
                    _call(_global("builtins", "__import__"), _text("os")),
                    _text("system"),
                ),
                _text(shell),
            )
        ),
        "builtins.getattr chain on an allowed global": _program(
            _call(
                _call(
                    _global("builtins", "getattr"), _global("collections", "OrderedDict"), _text("fromkeys")
                ),
                _list(_text("a")),
            )
        ),
        "STACK_GLOBAL os.system (protocol 4)": _program(
            _text("os") + _text("system") + b"\x93" + b"(" + _text(shell) + b"tR", protocol=4
        ),
        "INST opcode": b"(" + b"S'" + shell.encode() + b"'\n" + b"ios\nsystem\n.",
        "OBJ opcode": _program(b"(" + _global("os", "system") + _text(shell) + b"o"),
        "numpy runstring gadget": _program(
            _call(_global("numpy.testing._private.utils", "runstring"), _text(python), b"}")
        ),
        "importlib.import_module": _program(
            _call(_global("importlib", "import_module"), _text("antigravity"))
        ),
        "pickle.loads of a nested payload": _program(
            _call(_global("pickle", "loads"), b"B" + struct.pack("<I", len(nested)) + nested)  # BINBYTES
        ),
        "persistent id carrying eval": _program(
            b"("
            + _text("storage")
            + _call(_global("builtins", "eval"), _text(python))
            + _text("0")
            + _text("cpu")
            + b"K\x01tQ"
        ),
        "allowed _reconstruct given os.system": _program(
            _call(
                _global("numpy.core.multiarray", "_reconstruct"),
                _global("os", "system"),
                b"K\x00\x85",
                _text("b"),
            )
        ),
        "EXT1 unregistered extension code": _program(b"\x82\x01"),
        "copyreg._reconstructor": _program(
            _call(
                _global("copyreg", "_reconstructor"),
                _global("os", "_wrap_close"),
                _global("builtins", "object"),
                b"N",
            )
        ),
    }


def _legacy(state: bytes, position: str) -> bytes:
    """A legacy ``torch.save`` stream with ``state`` at one of its pickle positions."""
    parts = [
        LEGACY_MAGIC,
        LEGACY_VERSION,
        LEGACY_SYS_INFO,
        pickle.dumps({}, protocol=2),
        pickle.dumps([], protocol=2),
    ]
    index = {"version": 1, "sys_info": 2, "state": 3, "keys": 4}[position]
    parts[index] = state
    return b"".join(parts)


def _zip(state: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", state)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def _npz_object_array(state: bytes) -> bytes:
    """An ``.npz`` whose member is an object array: a .npy header, then the payload pickle."""
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + state
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("pca_eigen_vectors.npy", npy)
        archive.writestr("pca_means.npy", npy)
    return buffer.getvalue()


@functools.cache
def hostile_cases(marker: Path) -> tuple[WeightsInput, ...]:
    cases = []
    for name, state in payloads(marker).items():
        for position in ("state", "sys_info", "version", "keys"):
            cases.append(WeightsInput(f"legacy[{position}]:{name}", "evil.pth", _legacy(state, position)))
        cases.append(WeightsInput(f"zip:{name}", "evil.pth", _zip(state)))
        cases.append(WeightsInput(f"npz:{name}", "evil.npz", _npz_object_array(state)))
        cases.append(WeightsInput(f"bare pickle:{name}", "evil.pkl", state))
    return tuple(cases)


# --- corrupted real files ----------------------------------------------------------------------------------


@functools.cache
def weight_seeds() -> dict[str, bytes]:
    """Small real files of every format: the committed fixtures, a PCA .npz and a PCA-only native file."""
    out = {path.name: path.read_bytes() for path in sorted(FIXTURES.iterdir()) if path.is_file()}
    rng = np.random.default_rng(3)
    pca = {"pca_eigen_vectors": rng.standard_normal((128, 128)), "pca_means": rng.standard_normal(128)}
    buffer = io.BytesIO()
    np.savez(buffer, **pca)
    out["pca.npz"] = buffer.getvalue()
    metadata = {"format_version": "1", "architecture": "vggish", "synthetic": "true", "has_pca": "true"}
    out["pca-only.safetensors"] = safetensors.numpy.save(pca, metadata=metadata)
    return out


TRUNCATE_EVERY_BYTES = 512  # every truncation offset up to here, for each seed


@functools.cache
def corruption_cases() -> tuple[WeightsInput, ...]:
    cases = []
    for name, data in weight_seeds().items():
        cases.append(WeightsInput(f"{name}:intact", name, data))
        cases += [
            WeightsInput(f"{name}:truncate@{n}", name, data[:n])
            for n in range(min(len(data), TRUNCATE_EVERY_BYTES))
        ]
    return tuple(cases)


def case(run_seed: int, index: int, marker: Path) -> WeightsInput:
    """Case ``index``: hostile pickles, then every systematic truncation, then random mutations."""
    fixed = hostile_cases(marker) + corruption_cases()
    if index < len(fixed):
        return fixed[index]
    rng = np.random.default_rng([run_seed, index, 1])
    names = sorted(weight_seeds())
    name = names[int(rng.integers(0, len(names)))]
    data = bytearray(weight_seeds()[name])
    mutators: tuple[Callable, ...] = MUTATORS
    steps = [mutators[int(rng.integers(0, len(mutators)))](data, rng) for _ in range(int(rng.integers(1, 4)))]
    return WeightsInput(f"{name}:{'+'.join(steps)}", name, bytes(data))
