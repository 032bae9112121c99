"""A Module tree's arrays in and out by dotted key: the work behind ``state_dict`` / ``load_state_dict``.

Loading is all or nothing: every entry is checked (missing, unexpected, shape, dtype) before any array of
the model is replaced, so a failed load leaves the model exactly as it was.

State dicts are versioned, as PyTorch's are: every Module class has a ``_version`` (1 unless the class
changed its layout), ``state_dict()`` returns a :class:`StateDict` whose :attr:`StateDict.metadata` records
each module's version by key prefix, and loading calls ``module._upgrade_state(state, prefix, version)``
for every module whose stored version is older than its class's, before that module's entries are checked.
State without a record for a module (a plain dict, a file written before versions existed) is version 1.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from audioembed.errors import WeightsFormatError
from audioembed.nn.parameter import Parameter

if TYPE_CHECKING:
    from audioembed.nn.module import Module


VERSION = "version"  # the key of a module's version in its metadata entry, as in PyTorch


class StateDict(dict):
    """A state dict (``{dotted key: array}``) that also carries per-module metadata.

    ``metadata`` maps each module's key prefix without the final dot (``""`` for the root, ``"features.0"``
    for a grandchild) to ``{"version": int}``: the version of the module's class that wrote the entries.
    Plain ``dict(state)`` copies drop it (the state then counts as version 1); :meth:`copy` keeps it.
    """

    def __init__(self, *args: Any, metadata: Mapping[str, Mapping[str, Any]] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.metadata: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (metadata or {}).items()}

    def copy(self) -> StateDict:
        return StateDict(self, metadata=self.metadata)

    def versions(self) -> dict[str, int]:
        """``{prefix: version}`` for every module with a recorded version."""
        return {prefix: entry[VERSION] for prefix, entry in self.metadata.items() if VERSION in entry}


def stored_version(state: Mapping[str, Any], prefix: str) -> int:
    """The version ``state`` records for the module at ``prefix`` (``"a.b."``), 1 when none is recorded."""
    metadata = getattr(state, "metadata", None) or {}
    version = metadata.get(prefix[:-1], {}).get(VERSION, 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise WeightsFormatError(f"module {prefix[:-1]!r}: bad version {version!r} in the state's metadata")
    return version


def module_versions(module: Module) -> dict[str, int]:
    """``{prefix: class version}`` for every module of the tree (what ``state_dict().metadata`` records)."""
    return {prefix[:-1]: type(member)._version for prefix, member in _tree(module, "")}


def outdated_modules(module: Module, state: Mapping[str, Any]) -> list[str]:
    """The prefixes of the modules for which ``state`` records an older version than their class has.

    A loader that bypasses ``load_state_dict`` (VGGish memory-maps a native file's arrays) asks this first.
    """
    return [
        prefix[:-1]
        for prefix, member in _tree(module, "")
        if stored_version(state, prefix) < type(member)._version
    ]


def local_state(module: Module) -> Iterator[tuple[str, Parameter | np.ndarray]]:
    """``module``'s own (not its children's) non-None parameters and persistent buffers, by name."""
    for name, param in module._parameters.items():
        if param is not None:
            yield name, param
    for name, buffer in module._buffers.items():
        if buffer is not None and name not in module._non_persistent_buffers:
            yield name, buffer


def _tree(module: Module, prefix: str) -> Iterator[tuple[str, Module]]:
    """Pre-order walk with key prefixes ("" then "child." ...), every path (no de-duplication)."""
    yield prefix, module
    for name, child in module._modules.items():
        if child is not None:
            yield from _tree(child, f"{prefix}{name}.")


def collect_state(module: Module, prefix: str, keep_vars: bool) -> StateDict:
    """The tree's parameters and persistent buffers by key, copied unless ``keep_vars``; versions too."""
    state = StateDict()
    for module_prefix, member in _tree(module, prefix):
        state.metadata[module_prefix[:-1]] = {VERSION: type(member)._version}
        for name, value in local_state(member):
            state[module_prefix + name] = value if keep_vars else np.array(value, copy=True)
    return state


def load_state(root: Module, state_dict: Mapping[str, Any], strict: bool) -> tuple[list[str], list[str]]:
    """Check every entry of ``state_dict`` against the tree of ``root``, then copy them all in."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of str to arrays, got {type(state_dict).__name__}")
    state = StateDict(state_dict, metadata=getattr(state_dict, "metadata", None))  # hooks edit this copy
    missing: list[str] = []
    errors: list[str] = []
    expected: set[str] = set()
    writes: list[tuple[Module, str, np.ndarray, np.dtype[Any]]] = []
    for prefix, module in _tree(root, ""):  # pre-order: a parent's hooks run before its children read
        for hook in list(module._load_state_dict_pre_hooks.values()):
            hook(module, state, prefix)
        version = stored_version(state, prefix)
        if version > type(module)._version:
            errors.append(
                f"{prefix[:-1] or 'the root'} ({type(module).__name__}) was saved by version {version} of "
                f"its class, newer than this one ({type(module)._version}): upgrade audioembed to load it"
            )
        elif version < type(module)._version:
            module._upgrade_state(state, prefix, version)  # rewrites the old layout's keys in the copy
        for name, current in local_state(module):
            key = prefix + name
            expected.add(key)
            if key not in state:
                missing.append(key)
                continue
            value = np.asarray(state[key])
            if value.shape != current.shape:
                errors.append(f"shape mismatch for {key!r}: got {value.shape}, the model has {current.shape}")
            elif value.dtype.kind != current.dtype.kind:
                errors.append(f"dtype mismatch for {key!r}: got {value.dtype}, the model has {current.dtype}")
            else:
                # The copy keeps the model's memory order: VGGish's dense kernels are F-contiguous
                # (output-major, what its fused dense stack runs fastest: see audioembed.nn.fused_dense).
                held = getattr(current, "data", current)  # a Parameter's array, or a buffer
                flags = held.flags if isinstance(held, np.ndarray) else None
                order = "F" if flags is not None and flags.f_contiguous and not flags.c_contiguous else "C"
                writes.append((module, name, value, current.dtype, order))
    unexpected = [key for key in state if key not in expected]
    if errors or (strict and (missing or unexpected)):
        lines = [f"Error(s) in loading state_dict for {type(root).__name__}:"]
        if strict and missing:
            lines.append("missing key(s): " + ", ".join(repr(k) for k in missing))
        if strict and unexpected:
            lines.append("unexpected key(s): " + ", ".join(repr(k) for k in unexpected))
        raise WeightsFormatError("\n    ".join(lines + errors))
    for module, name, value, dtype, order in writes:
        # A private copy in the model's dtype: the caller's array (maybe a read-only mmap) stays theirs.
        array = np.array(value, dtype=dtype, order=order)
        if name in module._parameters:
            module._parameters[name].data = array
        else:
            module._buffers[name] = array
    return missing, unexpected
