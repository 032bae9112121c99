"""The committed gRPC stubs are what the .proto generates, imports are package-local, and --check works."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "generate_stubs.py"

pytestmark = pytest.mark.timeout(60)


def _load_script():
    spec = importlib.util.spec_from_file_location("generate_stubs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_are_not_stale():
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "up to date" in completed.stdout


def test_check_fails_on_an_edited_or_missing_stub(tmp_path, monkeypatch):
    script = _load_script()
    copy = tmp_path / "proto"
    shutil.copytree(script.STUBS_DIR, copy)
    monkeypatch.setattr(script, "STUBS_DIR", copy)
    assert script.stale_files() == []
    grpc_module = copy / "embedding_service_pb2_grpc.py"
    grpc_module.write_text(grpc_module.read_text() + "\n# hand edit\n")
    (copy / "embedding_service_pb2.pyi").unlink()
    assert script.stale_files() == ["embedding_service_pb2.pyi", "embedding_service_pb2_grpc.py"]
    assert script.main(["--check"]) == 1


def _copy_stubs(script, tmp_path, monkeypatch) -> Path:
    copy = tmp_path / "stubs"
    shutil.copytree(script.STUBS_DIR, copy)
    monkeypatch.setattr(script, "STUBS_DIR", copy)
    return copy


def test_a_newer_generators_version_stamps_alone_are_not_stale(tmp_path, monkeypatch):
    # A fresh machine gets the newest grpcio-tools/protobuf the ranges allow: their stamps must not count.
    script = _load_script()
    copy = _copy_stubs(script, tmp_path, monkeypatch)
    grpc_module = copy / "embedding_service_pb2_grpc.py"
    text = grpc_module.read_text()
    assert "GRPC_GENERATED_VERSION = '" in text
    newer = re.sub(r"GRPC_GENERATED_VERSION = '[^']*'", "GRPC_GENERATED_VERSION = '9.99.9'", text)
    grpc_module.write_text(newer)
    pb2 = copy / "embedding_service_pb2.py"
    text = pb2.read_text()
    text = re.sub(r"# Protobuf Python Version: .*", "# Protobuf Python Version: 99.1.2", text)
    text, count = re.subn(r"(Domain\.PUBLIC,)\s*\d+,\s*\d+,\s*\d+,", r"\1\n    99,\n    1,\n    2,", text)
    assert count == 1
    pb2.write_text(text)
    assert script.stale_files() == []


def test_an_edited_message_schema_in_a_stub_is_stale(tmp_path, monkeypatch):
    script = _load_script()
    copy = _copy_stubs(script, tmp_path, monkeypatch)
    pb2 = copy / "embedding_service_pb2.py"
    text = pb2.read_text()
    assert "EmbedRequest" in text
    pb2.write_text(text.replace("EmbedRequest", "EmbedReqvest", 1))
    assert script.stale_files() == ["embedding_service_pb2.py"]


def test_an_edited_proto_makes_the_committed_stubs_stale(tmp_path, monkeypatch):
    # A field added to the .proto without regenerating: the descriptor and the .pyi change.
    script = _load_script()
    proto_root = tmp_path / "proto"
    shutil.copytree(script.PROTO_ROOT, proto_root)
    package_dir = proto_root / "audioembed" / "v1"
    monkeypatch.setattr(script, "PROTO_ROOT", proto_root)
    monkeypatch.setattr(script, "PROTO_PACKAGE_DIR", package_dir)
    assert script.stale_files() == []
    proto = package_dir / "embedding_service.proto"
    proto.write_text(proto.read_text() + "\nmessage AddedWithoutRegenerating {\n  string note = 1;\n}\n")
    assert script.stale_files() == ["embedding_service_pb2.py", "embedding_service_pb2.pyi"]


def test_generated_imports_are_package_relative():
    text = (ROOT / "server" / "audioembed_server" / "proto" / "embedding_service_pb2_grpc.py").read_text()
    assert "from . import embedding_service_pb2" in text
    assert "from audioembed.v1" not in text  # would resolve to the library package, not the stubs
