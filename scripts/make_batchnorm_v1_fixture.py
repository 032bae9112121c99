"""Write ``tests/fixtures/state/batchnorm_v1.safetensors``: a model with batch norms in the version-1 layout.

Version 1 of the batch/instance norm layout (PyTorch's before 0.4.1, and this project's before
``num_batches_tracked``) has ``weight``, ``bias``, ``running_mean`` and ``running_var`` but no
``num_batches_tracked``. The file holds the state of :func:`model` (``tests/nn/test_norm_versions.py`` builds
the same one) in that layout, written the way state files were written before versions were recorded:
plain safetensors, no ``module_versions`` metadata. Values are seeded. Dev-only, no torch; run from the
repository root::

    python scripts/make_batchnorm_v1_fixture.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import safetensors.numpy

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from audioembed import nn  # noqa: E402

OUTPUT = ROOT / "tests" / "fixtures" / "state" / "batchnorm_v1.safetensors"


def model() -> nn.Module:
    """Dense -> batch norm -> ReLU -> dense -> batch norm without affine parameters."""
    return nn.Sequential(
        nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 3), nn.BatchNorm1d(3, affine=False)
    )


def main() -> None:
    rng = np.random.default_rng(1)
    state = {}
    for key, value in model().state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue  # the version-1 layout has no counter
        fresh = (
            rng.uniform(0.5, 1.5, value.shape)
            if key.endswith("running_var")
            else rng.standard_normal(value.shape)
        )
        state[key] = fresh.astype(value.dtype)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    safetensors.numpy.save_file(state, str(OUTPUT))  # the pre-versions way: no metadata at all
    print(f"wrote {len(state)} arrays to {OUTPUT.relative_to(ROOT)}: {', '.join(sorted(state))}")


if __name__ == "__main__":
    main()
