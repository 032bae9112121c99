"""Containers of modules: ``Sequential`` (a pipeline), ``ModuleList`` and ``ModuleDict`` (registries)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, overload

from audioembed.nn.module import Module


def _check_module(module: Any, where: str) -> Module:
    if not isinstance(module, Module):
        raise TypeError(f"{where} holds Modules, got {type(module).__name__} {module!r}")
    return module


def _index(container: Module, index: int) -> int:
    """Normalise a possibly negative position into ``range(len(container))``."""
    size = len(container._modules)
    if not isinstance(index, int) or isinstance(index, bool):
        raise TypeError(f"{type(container).__name__} indices must be int or slice, got {index!r}")
    if not -size <= index < size:
        raise IndexError(f"index {index} is out of range for {type(container).__name__} of length {size}")
    return index % size


class Sequential(Module):
    """Modules run one after another: ``forward(x)`` feeds ``x`` through each in order.

    Parameters
    ----------
    *modules : Module
        The stages, named ``"0"``, ``"1"``, ...; or a single mapping of name to module, to name them.
    """

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, module in modules[0].items():
                self.add_module(name, _check_module(module, "Sequential"))
        else:
            for position, module in enumerate(modules):
                self.add_module(str(position), _check_module(module, "Sequential"))

    @overload
    def __getitem__(self, index: int) -> Module: ...
    @overload
    def __getitem__(self, index: slice) -> Sequential: ...
    def __getitem__(self, index: int | slice) -> Module | Sequential:
        items = list(self._modules.items())
        if isinstance(index, slice):
            return type(self)(dict(items[index]))  # keeps the original names, as a sub-pipeline
        return items[_index(self, index)][1]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        """Add ``module`` as the last stage; returns self."""
        self.add_module(str(len(self)), _check_module(module, "Sequential"))
        return self

    def forward(self, x: Any) -> Any:
        """Run ``x`` through every stage in order."""
        for module in self._modules.values():
            x = module(x)
        return x


class ModuleList(Module):
    """A list of modules, registered as children ``"0"``, ``"1"``, ...; it has no ``forward`` of its own."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    @overload
    def __getitem__(self, index: int) -> Module: ...
    @overload
    def __getitem__(self, index: slice) -> ModuleList: ...
    def __getitem__(self, index: int | slice) -> Module | ModuleList:
        items = list(self._modules.values())
        if isinstance(index, slice):
            return type(self)(items[index])
        return items[_index(self, index)]

    def __setitem__(self, index: int, module: Module) -> None:
        self._modules[str(_index(self, index))] = _check_module(module, "ModuleList")

    def __delitem__(self, index: int) -> None:
        items = list(self._modules.values())
        del items[_index(self, index)]
        self._modules.clear()  # renumber, so names stay "0".."n-1" and match positions
        self.extend(items)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> ModuleList:
        """Add ``module`` at the end; returns self."""
        self.add_module(str(len(self)), _check_module(module, "ModuleList"))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Append every module of ``modules``; returns self."""
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert ``module`` before position ``index`` (clamped like ``list.insert``)."""
        items = list(self._modules.values())
        items.insert(index, _check_module(module, "ModuleList"))
        self._modules.clear()
        self.extend(items)


class ModuleDict(Module):
    """A dict of modules by name, registered as children in insertion order; no ``forward`` of its own."""

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict has no module {key!r}; it has {list(self._modules)}")
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, _check_module(module, "ModuleDict"))

    def __delitem__(self, key: str) -> None:
        self[key]  # raises the KeyError naming the key
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> Iterable[str]:
        """The names, in insertion order."""
        return self._modules.keys()

    def values(self) -> Iterable[Module]:
        """The modules, in insertion order."""
        return self._modules.values()

    def items(self) -> Iterable[tuple[str, Module]]:
        """``(name, module)`` pairs, in insertion order."""
        return self._modules.items()

    def pop(self, key: str) -> Module:
        """Remove the module ``key`` and return it."""
        module = self[key]
        del self._modules[key]
        return module

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """Add or replace modules from a mapping or from ``(name, module)`` pairs."""
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for key, module in pairs:
            self[key] = module
