"""The layering DESIGN.md fixes: data flows one way, and the server uses only the library's public names.

``nn`` and ``vggish`` know no audio; ``audio`` knows no model; the server imports the library only through
modules and names that are public (``__all__``), never ``audioembed.bulk`` / ``commands`` internals.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "server" / "audioembed_server"

# What each lower layer may never load, even indirectly (checked in a fresh interpreter).
FORBIDDEN = {
    "audioembed.nn": ("audioembed.audio", "audioembed.vggish", "audioembed.pipeline"),
    "audioembed.vggish": (
        "audioembed.audio",
        "audioembed.pipeline",
        "audioembed.bulk",
        "audioembed.commands",
    ),
    "audioembed.audio": ("audioembed.nn", "audioembed.vggish", "audioembed.pipeline"),
}
# The library modules the server may import from; names must be in their __all__ (or, without one, be
# public names defined in the module).
SERVER_MAY_IMPORT = {
    "audioembed",
    "audioembed.audio",
    "audioembed.errors",
    "audioembed.cli",
    "audioembed.classifier",  # served classifiers: Classifier, read_classifier, ClassificationResult
}

_PROBE = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_lower_layer_loads_nothing_above_it(package):
    # Every submodule is imported, so a lazy import inside a function would not hide here; the ones
    # executed only at call time are covered by the source scan below.
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", _PROBE, package], check=True, capture_output=True, text=True, cwd=ROOT
        ).stdout
    )
    above = [m for m in loaded if m.startswith(FORBIDDEN[package])]
    assert above == [], f"{package} loads {above}"


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_lower_layer_names_nothing_above_it(package):
    directory = ROOT.joinpath(*package.split("."))
    offenders = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted(directory.rglob("*.py"))
        for module in _imported_modules(path)
        if module.startswith(FORBIDDEN[package])
    ]
    assert offenders == []


def test_the_server_uses_only_public_library_names():
    offenders = []
    for path in sorted(SERVER.rglob("*.py")):
        if "proto" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                pairs = [(alias.name, None) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                pairs = [(node.module, alias.name) for alias in node.names]
            else:
                continue
            for module, name in pairs:
                if module.split(".")[0] != "audioembed":
                    continue
                problem = _public_problem(module, name)
                if problem:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {problem}")
    assert offenders == []


def test_the_scan_would_catch_a_private_import():
    assert _public_problem("audioembed.bulk.outputs", "write_result_npz")
    assert _public_problem("audioembed.audio.decode", "open_audio")
    assert _public_problem("audioembed.audio", "decode")  # a submodule is not a public name
    assert _public_problem("audioembed", "pipeline")
    assert not _public_problem("audioembed", "audio")
    assert not _public_problem("audioembed.cli", "Command")
    assert not _public_problem("audioembed.errors", "AudioDecodeError")
    assert _public_problem("audioembed.errors", "annotations")  # imported there, not defined


def _public_problem(module: str, name: str | None) -> str | None:
    if name is not None and f"{module}.{name}" in SERVER_MAY_IMPORT:
        return None  # `from audioembed import audio`: a public module
    if module not in SERVER_MAY_IMPORT:
        return f"imports from {module}, which is not a public library module"
    if name is None:
        return None
    imported = importlib.import_module(module)
    public = getattr(imported, "__all__", None)
    if public is not None:
        return None if name in public else f"imports {name} from {module}, which is not in its __all__"
    # A module without __all__ (errors.py): a public name defined there, not one it imported itself.
    value = getattr(imported, name, None)
    if name.startswith("_") or value is None or getattr(value, "__module__", module) != module:
        return f"imports {name} from {module}, which is not a public name defined there"
    return None


def _imported_modules(path: Path) -> list[str]:
    """Every absolute module an import statement in ``path`` names (at any depth: lazy imports too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return found
