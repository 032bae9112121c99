"""Models by name: the registry of :mod:`audioembed.nn.registry` with the project's models registered.

``audioembed.create_model("vggish", pretrained=True)``, ``audioembed.list_models()``. The bare registry in
``audioembed.nn`` knows no model (``nn`` knows nothing above it); the functions here first import the
packages in :data:`PROVIDERS`, whose import registers their models.
"""

from __future__ import annotations

import importlib
from os import PathLike
from typing import Any

from audioembed.nn import registry
from audioembed.nn.module import Module
from audioembed.nn.registry import ModelEntry, register_model

# Packages whose import registers models. A package that registers models adds its import path here.
PROVIDERS = ("audioembed.vggish", "audioembed.classifier")

__all__ = [
    "PROVIDERS",
    "ModelEntry",
    "create_model",
    "is_model",
    "list_models",
    "model_entry",
    "register_model",
]


def _load_providers() -> None:
    for name in PROVIDERS:
        importlib.import_module(name)  # cached after the first call


def create_model(
    name: str, weights: str | PathLike[str] | None = None, pretrained: bool = False, **kwargs: Any
) -> Module:
    """Build a registered model by name; see :func:`audioembed.nn.registry.create_model`.

    Examples
    --------
    >>> model = create_model("vggish", pretrained=True)  # doctest: +SKIP
    >>> model = create_model("vggish", weights="vggish_model.ckpt")  # doctest: +SKIP
    """
    _load_providers()
    return registry.create_model(name, weights=weights, pretrained=pretrained, **kwargs)


def list_models(pattern: str | None = None) -> list[str]:
    """The registered model names, sorted, optionally filtered by a shell-style ``pattern``."""
    _load_providers()
    return registry.list_models(pattern)


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered model."""
    _load_providers()
    return registry.is_model(name)


def model_entry(name: str) -> ModelEntry:
    """The registration of ``name``: builder, default options, pretrained resolver, summary."""
    _load_providers()
    return registry.model_entry(name)
