"""Generate the gRPC stubs of ``proto/audioembed/v1/*.proto`` into ``server/audioembed_server/proto/``.

One command regenerates them (``python scripts/generate_stubs.py``); ``--check`` regenerates into a
temporary directory and exits 1 when the committed stubs differ, so CI catches a ``.proto`` edited
without regenerating.

protoc writes ``from audioembed.v1 import x_pb2`` into the generated modules, which would resolve to
the *library* package ``audioembed``; the stubs live flat in ``audioembed_server.proto``, so those
imports are rewritten to package-relative ones (``from . import x_pb2``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO_PACKAGE_DIR = PROTO_ROOT / "audioembed" / "v1"
STUBS_DIR = ROOT / "server" / "audioembed_server" / "proto"
INIT_TEXT = '"""Generated gRPC stubs of proto/audioembed/v1 (scripts/generate_stubs.py); do not edit."""\n'

# `from audioembed.v1 import embedding_service_pb2 as ...` -> `from . import embedding_service_pb2 as ...`
_ABSOLUTE_IMPORT = re.compile(r"^from audioembed\.v1 import (\w+_pb2)", re.MULTILINE)
# The .pyi files refer to sibling modules as `audioembed.v1.x_pb2`; keep them self-contained as well.
_PYI_IMPORT = re.compile(r"^import audioembed\.v1\.(\w+_pb2) as", re.MULTILINE)

# What the generators stamp with their own version: grpcio-tools' `GRPC_GENERATED_VERSION = '1.85.4'`, and
# protoc's `# Protobuf Python Version: 7.35.1` comment and the major/minor/patch arguments of
# `ValidateProtobufRuntimeVersion(...)`. A newer generator within the pinned ranges changes only these, so
# the staleness check blanks them: it compares the service definition and the message schema (the
# serialized descriptor), not which patch release of the tools wrote them.
_VERSION_STAMPS = (
    re.compile(r"^(GRPC_GENERATED_VERSION = )'[^']*'$", re.MULTILINE),
    re.compile(r"^(# Protobuf Python Version: ).*$", re.MULTILINE),
    re.compile(r"(ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.\w+,)\s*\d+,\s*\d+,\s*\d+,"),
)


def _protoc(out_dir: Path) -> None:
    """Run protoc (from grpcio-tools) over every .proto into ``out_dir``, flat."""
    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise SystemExit("generate_stubs: grpcio-tools is required (pip install grpcio-tools)") from e
    protos = sorted(PROTO_PACKAGE_DIR.glob("*.proto"))
    if not protos:
        raise SystemExit(f"generate_stubs: no .proto files in {PROTO_PACKAGE_DIR}")
    include = Path(grpc_tools.__file__).parent / "_proto"  # well-known types (google/protobuf/*.proto)
    raw_dir = out_dir / "raw"
    raw_dir.mkdir()
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={raw_dir}",
        f"--pyi_out={raw_dir}",
        f"--grpc_python_out={raw_dir}",
        *(str(p.relative_to(PROTO_ROOT)) for p in protos),
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"generate_stubs: protoc failed with exit code {code}")
    # protoc mirrors the proto path (audioembed/v1/...); the package keeps the modules flat.
    for generated in sorted((raw_dir / "audioembed" / "v1").iterdir()):
        text = generated.read_text()
        text = _ABSOLUTE_IMPORT.sub(r"from . import \1", text)
        text = _PYI_IMPORT.sub(r"from . import \1 as", text)
        (out_dir / generated.name).write_text(text)
    shutil.rmtree(raw_dir)
    (out_dir / "__init__.py").write_text(INIT_TEXT)


def without_version_stamps(text: str) -> str:
    """``text`` with the generators' own version numbers blanked (see ``_VERSION_STAMPS``)."""
    for stamp in _VERSION_STAMPS:
        text = stamp.sub(r"\1<version>", text)
    return text


def _tree(directory: Path) -> dict[str, str]:
    """Map file name -> text, version stamps blanked, for the stub files of ``directory`` (caches ignored)."""
    if not directory.is_dir():
        return {}
    return {
        p.name: without_version_stamps(p.read_text())
        for p in sorted(directory.iterdir())
        if p.is_file() and p.suffix in {".py", ".pyi"}
    }


def stale_files() -> list[str]:
    """Return the names of stub files that are missing, extra, or differ from a fresh generation.

    Differences in the generators' version stamps alone do not count (see ``_VERSION_STAMPS``).
    """
    with tempfile.TemporaryDirectory() as tmp:
        fresh_dir = Path(tmp)
        _protoc(fresh_dir)
        fresh, committed = _tree(fresh_dir), _tree(STUBS_DIR)
    return sorted(name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name))


def generate() -> list[str]:
    """(Re)write the committed stubs; return the file names written."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh_dir = Path(tmp)
        _protoc(fresh_dir)
        if STUBS_DIR.exists():
            for old in STUBS_DIR.iterdir():
                if old.is_file() and old.suffix in {".py", ".pyi"}:
                    old.unlink()
        STUBS_DIR.mkdir(parents=True, exist_ok=True)
        names = []
        for generated in sorted(fresh_dir.iterdir()):
            shutil.copyfile(generated, STUBS_DIR / generated.name)
            names.append(generated.name)
    return names


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (messages stay machine-independent)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed stubs are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print(
                f"generate_stubs: stale stubs in {_shown(STUBS_DIR)}: {', '.join(stale)}; "
                "run `python scripts/generate_stubs.py`",
                file=sys.stderr,
            )
            return 1
        print("generate_stubs: stubs are up to date")
        return 0
    for name in generate():
        print(f"wrote {_shown(STUBS_DIR / name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
