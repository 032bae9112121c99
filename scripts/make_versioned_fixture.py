"""Write the state files in old layouts that the versioned-state-dict tests load (dev-only, no torch).

``tests/fixtures/state/scale_v1.safetensors``: ``tests/nn/versioned_modules.Model`` with its ``Scale`` layers
in the version-1 layout (a ``gain`` buffer [3]), written as every state file was before module versions were
recorded: plain safetensors, no ``module_versions`` metadata. ``scale_v2.safetensors``: the version-2 layout
(``weight`` [1, 3], no ``calls`` buffer) with ``module_versions`` recording version 2 for the ``Scale``
layers. Run from the repository root::

    python scripts/make_versioned_fixture.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import safetensors.numpy

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "nn")]

from versioned_modules import FIXTURES, V1_VALUES  # noqa: E402

from audioembed.nn.serialization import save_state_file  # noqa: E402
from audioembed.nn.state_dict import StateDict  # noqa: E402


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    v1 = FIXTURES / "scale_v1.safetensors"
    safetensors.numpy.save_file(V1_VALUES, v1)  # the pre-versions way: no metadata at all
    v2_values = {
        key.replace("gain", "weight"): value.reshape(1, -1) if key.endswith("gain") else value
        for key, value in V1_VALUES.items()
    }
    versions = {"": 1, "body": 1, "body.0": 2, "body.1": 1, "body.2": 2, "head": 1}
    v2 = save_state_file(
        FIXTURES / "scale_v2.safetensors",
        StateDict(v2_values, metadata={prefix: {"version": v} for prefix, v in versions.items()}),
        metadata={"written_by": "scripts/make_versioned_fixture.py"},
    )
    for path in (v1, v2):
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
