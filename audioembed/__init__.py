"""audioembed: Google's VGGish audio embeddings, numerically the reference, in Python + NumPy.

``Embedder`` is the one object most users need; the layers it joins are public too:
:mod:`audioembed.audio` (front-end), :mod:`audioembed.vggish` (model, postprocessor, weight files) and
:mod:`audioembed.nn` (the Module framework).

The names below are imported on first use (PEP 562), so ``import audioembed.errors`` or a health probe
does not pay for NumPy, SciPy and the model code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from audioembed._version import __version__

if TYPE_CHECKING:
    from audioembed.models import create_model, list_models, register_model
    from audioembed.pipeline import Embedder, FailedInput
    from audioembed.result import EmbeddingResult, ModelInfo

_LAZY = {
    "Embedder": "audioembed.pipeline",
    "FailedInput": "audioembed.pipeline",
    "EmbeddingResult": "audioembed.result",
    "ModelInfo": "audioembed.result",
    "create_model": "audioembed.models",
    "list_models": "audioembed.models",
    "register_model": "audioembed.models",
}

__all__ = [
    "Embedder",
    "EmbeddingResult",
    "FailedInput",
    "ModelInfo",
    "__version__",
    "create_model",
    "list_models",
    "register_model",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audioembed' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
