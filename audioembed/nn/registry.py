"""A model registry in timm's style: ``@register_model`` builders, ``create_model(name)``, ``list_models()``.

A *builder* is a function that returns a :class:`~audioembed.nn.Module`; registering it under a name makes
the model constructible by name, with options (``create_model("mlp_head", hidden=256)``) and weights::

    @register_model("vggish", pretrained=resolve_official_weights)
    def vggish(weights: Path | None = None) -> VGGish:
        return VGGish() if weights is None else load_vggish(weights)

A builder that declares a ``weights`` parameter loads its own files (any format it knows) and receives the
resolved path, or None. For any other builder, :func:`create_model` builds the model and loads the file with
:func:`audioembed.nn.serialization.load_state_file` and ``load_state_dict`` (version migrations included).
A model loaded from weights is returned in eval mode (ready for inference), a fresh one in training mode.

This module is the bare mechanism and knows no model: packages register theirs when imported.
``audioembed.create_model`` / ``audioembed.list_models`` import the project's model packages first.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

from audioembed.errors import InvalidOptionError, ModelRegistryError
from audioembed.nn.module import Module

Builder = TypeVar("Builder", bound=Callable[..., Module])
WeightsResolver = Callable[[], "str | PathLike[str]"]


@dataclass(frozen=True)
class ModelEntry:
    """One registered model.

    Attributes
    ----------
    name : str
        The registered name.
    builder : callable
        Returns the model; takes the options (keyword arguments) and maybe ``weights``.
    default_config : mapping of str to Any
        Options passed to the builder unless :func:`create_model` overrides them.
    pretrained : callable or None
        Returns the path of the default ("pretrained") weights; None when the model has none.
    summary : str
        The first line of the builder's docstring.
    """

    name: str
    builder: Callable[..., Module]
    default_config: Mapping[str, Any] = field(default_factory=dict)
    pretrained: WeightsResolver | None = None
    summary: str = ""

    @property
    def loads_own_weights(self) -> bool:
        """Whether the builder takes a ``weights`` argument (it reads its own files)."""
        return "weights" in inspect.signature(self.builder).parameters

    @property
    def origin(self) -> str:
        """Where the builder is defined: ``module.qualname``."""
        return f"{self.builder.__module__}.{self.builder.__qualname__}"


_entries: dict[str, ModelEntry] = {}
_lock = threading.Lock()


def register_model(
    name: str | Callable[..., Module] | None = None,
    *,
    pretrained: WeightsResolver | None = None,
    default_config: Mapping[str, Any] | None = None,
) -> Any:
    """Register a model builder under ``name`` (default: the function's name); use as a decorator.

    ``@register_model`` and ``@register_model("name", pretrained=..., default_config={...})`` both work;
    the builder is returned unchanged. Registering the same function again (a module reloaded) replaces
    the entry; another function under a taken name is an error.

    Parameters
    ----------
    name : str, optional
        The name users pass to :func:`create_model`: non-empty, no whitespace.
    pretrained : callable, optional
        Returns the path of the model's default weights (``create_model(name, pretrained=True)``); it
        should raise a clear error (e.g. ``WeightsNotFoundError``) when they are not available.
    default_config : mapping, optional
        Default options for the builder; each must be one of its parameters.

    Raises
    ------
    ModelRegistryError
        A bad name, a name already taken by another builder, a builder that is not callable, or a
        default option the builder does not take.
    """
    if callable(name):  # used bare: @register_model
        return register_model()(name)

    def decorator(builder: Builder) -> Builder:
        if not callable(builder):
            raise ModelRegistryError(f"register_model decorates a function, got {type(builder).__name__}")
        entry_name = builder.__name__ if name is None else name
        if not isinstance(entry_name, str) or not entry_name or any(c.isspace() for c in entry_name):
            raise ModelRegistryError(f"a model name is a non-empty str without spaces, got {entry_name!r}")
        config = dict(default_config or {})
        accepted = inspect.signature(builder).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
        unknown = sorted(k for k in config if k not in accepted or k == "weights")
        if (unknown and not takes_any) or "weights" in config:
            raise ModelRegistryError(
                f"default_config of model {entry_name!r} has option(s) {unknown} that its builder "
                f"{builder.__qualname__}{inspect.signature(builder)} does not take"
            )
        doc = inspect.getdoc(builder) or ""
        entry = ModelEntry(entry_name, builder, config, pretrained, doc.split("\n", 1)[0])
        with _lock:
            existing = _entries.get(entry_name)
            if existing is not None and existing.origin != entry.origin:
                raise ModelRegistryError(
                    f"model name {entry_name!r} is already registered by {existing.origin}; "
                    f"{entry.origin} must use another name"
                )
            _entries[entry_name] = entry
        return builder

    return decorator


def unregister_model(name: str) -> None:
    """Remove ``name`` from the registry (a plugin unloading, a test cleaning up); unknown names raise."""
    with _lock:
        removed = _entries.pop(name, None)
    if removed is None:
        raise InvalidOptionError(_unknown_message(name))


def list_models(pattern: str | None = None) -> list[str]:
    """The registered names, sorted; only those matching the shell-style ``pattern`` (``"vgg*"``) if given."""
    with _lock:
        names = sorted(_entries)
    if pattern is None:
        return names
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a str such as 'vgg*', got {type(pattern).__name__}")
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def is_model(name: str) -> bool:
    """Whether ``name`` is registered."""
    with _lock:
        return name in _entries


def model_entry(name: str) -> ModelEntry:
    """The registration of ``name`` (builder, defaults, pretrained resolver, summary).

    Raises
    ------
    InvalidOptionError
        ``name`` is not registered; the message lists close matches.
    """
    if not isinstance(name, str):
        raise TypeError(f"a model name is a str, got {type(name).__name__}")
    with _lock:
        entry = _entries.get(name)
    if entry is None:
        raise InvalidOptionError(_unknown_message(name))
    return entry


def create_model(
    name: str, weights: str | PathLike[str] | None = None, pretrained: bool = False, **kwargs: Any
) -> Module:
    """Build the registered model ``name`` with options ``kwargs``, optionally with weights.

    Parameters
    ----------
    name : str
        A registered name (see :func:`list_models`).
    weights : str or PathLike, optional
        A weights file to load: any format the model's builder reads, else a state file written by
        :func:`audioembed.nn.serialization.save_state_file`.
    pretrained : bool
        Load the model's default weights (its registered resolver finds them).
    **kwargs
        Options for the builder, overriding the registered ``default_config``.

    Returns
    -------
    Module
        In eval mode when weights were loaded, else as built (training mode).

    Raises
    ------
    InvalidOptionError
        Unknown name (with close matches), both ``weights`` and ``pretrained``, ``pretrained`` for a model
        without default weights, or an option the builder does not take.
    WeightsError
        The weights file is missing or does not fit the model (from the loader).
    """
    entry = model_entry(name)
    if weights is not None and pretrained:
        raise InvalidOptionError(f"pass weights={weights!r} or pretrained=True for {name!r}, not both")
    if pretrained is not False and pretrained is not True:
        raise InvalidOptionError(f"pretrained must be a bool, got {pretrained!r}")
    if pretrained:
        if entry.pretrained is None:
            raise InvalidOptionError(f"model {name!r} has no pretrained weights: pass weights=PATH instead")
        weights = entry.pretrained()
    config = {**entry.default_config, **kwargs}
    _check_options(entry, config)
    if entry.loads_own_weights:
        model = entry.builder(weights=None if weights is None else Path(weights), **config)
    else:
        model = entry.builder(**config)
    if not isinstance(model, Module):
        raise ModelRegistryError(f"the builder of {name!r} ({entry.origin}) returned {type(model).__name__}")
    if weights is not None and not entry.loads_own_weights:
        from audioembed.nn.serialization import load_state_file

        state, _ = load_state_file(weights)
        model.load_state_dict(state)
        model.eval()
    return model


def _check_options(entry: ModelEntry, config: Mapping[str, Any]) -> None:
    parameters = {k: p for k, p in inspect.signature(entry.builder).parameters.items() if k != "weights"}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(k for k in config if k not in parameters)
    if unknown:
        raise InvalidOptionError(
            f"model {entry.name!r} does not take option(s) {unknown}; its options: {sorted(parameters)}"
        )


def _unknown_message(name: str) -> str:
    with _lock:
        names = sorted(_entries)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown model {name!r}{hint} (registered: {', '.join(names) or 'none'})"
