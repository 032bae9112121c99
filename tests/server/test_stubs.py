"""The committed gRPC stubs are what the .proto generates, imports are package-local, and --check works."""

from __future__ import annotations

import importlib.util
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


def test_generated_imports_are_package_relative():
    text = (ROOT / "server" / "audioembed_server" / "proto" / "embedding_service_pb2_grpc.py").read_text()
    assert "from . import embedding_service_pb2" in text
    assert "from audioembed.v1" not in text  # would resolve to the library package, not the stubs
