"""``Module``: PyTorch ``nn.Module`` semantics over NumPy arrays.

A Module owns named parameters, buffers and submodules, registered by plain attribute assignment. One
recursive walker (:meth:`Module.named_modules`) feeds every ``parameters()`` / ``buffers()`` /
``modules()`` listing, and one :meth:`Module._apply` feeds every dtype cast. ``state_dict`` /
``load_state_dict`` move arrays in and out by dotted key (``"conv1.weight"``); a load pre-hook lets a
model accept another file's names, and a class's ``_version`` / ``_upgrade_state`` load older layouts.
Parameters carry ``requires_grad`` and ``grad`` for training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from audioembed.nn.autograd import module_hooks
from audioembed.nn.autograd.grad_mode import is_grad_enabled
from audioembed.nn.hooks import RemovableHandle
from audioembed.nn.parameter import Parameter
from audioembed.nn.state_dict import StateDict, collect_state, load_state

ForwardPreHook = Callable[["Module", tuple[Any, ...]], Any]
ForwardHook = Callable[["Module", tuple[Any, ...], Any], Any]
BackwardPreHook = Callable[["Module", tuple[Any, ...]], Any]
BackwardHook = Callable[["Module", tuple[Any, ...], tuple[Any, ...]], Any]
LoadPreHook = Callable[["Module", dict[str, Any], str], None]


class Module:
    """Base class of every layer and model: holds parameters, buffers and submodules by name.

    Subclasses call ``super().__init__()`` first, assign their parameters (:class:`Parameter`), buffers
    (:meth:`register_buffer`) and submodules as attributes, and define :meth:`forward`. Calling the module
    runs the forward pre-hooks, ``forward``, then the forward hooks.
    """

    training: bool
    # The layout version of this class's own state-dict entries. A class that renames, reshapes, adds or
    # drops one of its parameters or buffers bumps it and overrides _upgrade_state to convert older state.
    _version: int = 1

    def __init__(self) -> None:
        # Set through object.__setattr__: our own __setattr__ needs these dicts to exist already.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_forward_pre_hooks", {})
        object.__setattr__(self, "_forward_hooks", {})
        object.__setattr__(self, "_backward_pre_hooks", {})
        object.__setattr__(self, "_backward_hooks", {})
        object.__setattr__(self, "_load_state_dict_pre_hooks", {})

    # --- attribute routing -----------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if isinstance(value, (Parameter, Module)) and params is None:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() call")
        if isinstance(value, Parameter):
            self._forget(name)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter {name!r} (Parameter or None expected)"
                )
            params[name] = None
        elif isinstance(value, Module):
            self._forget(name)
            self.add_module(name, value)
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as child module {name!r} (Module or None expected)"
                )
            self._modules[name] = None
        elif params is not None and name in self._buffers:
            if value is not None and not isinstance(value, np.ndarray):
                raise TypeError(
                    f"cannot assign {type(value).__name__} as buffer {name!r} (np.ndarray or None expected)"
                )
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        """Drop ``name`` from every registry and the instance dict, before it is re-registered elsewhere."""
        self.__dict__.pop(name, None)
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: look in the registries.
        for registry in ("_parameters", "_buffers", "_modules"):
            members = self.__dict__.get(registry)
            if members is not None and name in members:
                return members[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        if name in self._parameters or name in self._buffers or name in self._modules:
            self._forget(name)
        else:
            object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._parameters, *self._buffers, *self._modules})

    # --- registration --------------------------------------------------------------------------------
    def _check_new_name(self, name: Any, kind: str, registry: dict[str, Any]) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{kind} name must be a str, got {type(name).__name__} {name!r}")
        if not name:
            raise ValueError(f"{kind} name can't be empty, got {name!r}")
        if "." in name:
            raise ValueError(f"{kind} name can't contain '.', got {name!r}")
        if name not in registry and (
            hasattr(type(self), name) or name in self.__dict__ or self._registered(name)
        ):
            raise ValueError(
                f"{kind} name {name!r} clashes with an existing attribute of {type(self).__name__}"
            )

    def _registered(self, name: str) -> bool:
        return name in self._parameters or name in self._buffers or name in self._modules

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or a None placeholder) as parameter ``name``."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot register a parameter before Module.__init__() call")
        self._check_new_name(name, "parameter", self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot register {type(param).__name__} as parameter {name!r} (Parameter or None expected)"
            )
        self._parameters[name] = param

    def register_buffer(self, name: str, array: np.ndarray | None, persistent: bool = True) -> None:
        """Register ``array`` as buffer ``name``: state that is not a parameter (e.g. PCA constants).

        A non-persistent buffer is cast by ``float()`` etc. but left out of ``state_dict``.
        """
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot register a buffer before Module.__init__() call")
        self._check_new_name(name, "buffer", self._buffers)
        if array is not None and not isinstance(array, np.ndarray):
            raise TypeError(
                f"cannot register {type(array).__name__} as buffer {name!r} (np.ndarray or None expected)"
            )
        self._buffers[name] = array
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` (or a None placeholder) as child ``name``."""
        if "_modules" not in self.__dict__:
            raise AttributeError("cannot add a module before Module.__init__() call")
        self._check_new_name(name, "module", self._modules)
        if module is not None and not isinstance(module, Module):
            raise TypeError(
                f"cannot add {type(module).__name__} as child module {name!r} (Module or None expected)"
            )
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target: str) -> Module:
        """The submodule at dotted path ``target`` (``""`` is this module)."""
        module = self
        for depth, part in enumerate(target.split(".") if target else []):
            child = module._modules.get(part)
            if child is None:
                where = ".".join(target.split(".")[:depth]) or type(self).__name__
                raise AttributeError(f"{where} has no submodule {part!r} (looking up {target!r})")
            module = child
        return module

    # --- walking the tree ------------------------------------------------------------------------------
    def named_modules(
        self, memo: set[int] | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """Yield ``(dotted_name, module)`` for this module and every descendant, depth first.

        A module reachable by several paths is yielded once (at its first path) unless
        ``remove_duplicate`` is False.
        """
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def _named_members(
        self,
        members: Callable[[Module], Iterator[tuple[str, Any]]],
        prefix: str,
        recurse: bool,
        remove_duplicate: bool,
    ) -> Iterator[tuple[str, Any]]:
        modules = (
            self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
            if recurse
            else [(prefix, self)]
        )
        seen: set[int] = set()
        for module_prefix, module in modules:
            for name, value in members(module):
                if value is None or id(value) in seen:
                    continue
                if remove_duplicate:
                    seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """Yield ``(dotted_name, parameter)``; shared parameters once unless ``remove_duplicate`` is False."""
        return self._named_members(lambda m: iter(m._parameters.items()), prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Yield every parameter (of descendants too when ``recurse``)."""
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(dotted_name, buffer)``, persistent or not."""
        return self._named_members(lambda m: iter(m._buffers.items()), prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[np.ndarray]:
        """Yield every buffer (of descendants too when ``recurse``)."""
        return (b for _, b in self.named_buffers(recurse=recurse))

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Yield ``(name, child)`` for the direct children, each child object once."""
        seen: set[int] = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Module]:
        """Yield the direct children."""
        return (child for _, child in self.named_children())

    def modules(self) -> Iterator[Module]:
        """Yield this module and every descendant, each once."""
        return (module for _, module in self.named_modules())

    # --- modes and conversions -------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set the training flag on this module and every descendant; returns self."""
        if not isinstance(mode, bool):
            raise TypeError(f"training mode must be a bool, got {mode!r}")
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self) -> Module:
        """Switch to inference mode (``train(False)``); returns self."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Set ``requires_grad`` on every parameter of the tree (False freezes it); returns self."""
        if not isinstance(requires_grad, bool):
            raise TypeError(f"requires_grad must be a bool, got {requires_grad!r}")
        for param in self.parameters():
            param.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: to None (the default, frees the memory) or to zeros in place."""
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad.fill(0)

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn`` on every descendant, then on self (children first, as in weight init); returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def _apply(self, fn: Callable[[np.ndarray], np.ndarray]) -> Module:
        """Replace each parameter and buffer array in the tree by ``fn(array)``, in place; returns self."""
        for child in self.children():
            child._apply(fn)
        for param in self._parameters.values():
            if param is not None:
                param.data = fn(param.data)
        for name, buffer in self._buffers.items():
            if buffer is not None:
                self._buffers[name] = fn(buffer)
        return self

    def to(self, dtype: DTypeLike) -> Module:
        """Cast every floating-point parameter and buffer to the floating ``dtype``; returns self."""
        target = np.dtype(dtype)
        if not np.issubdtype(target, np.floating):
            raise TypeError(f"Module.to() takes a floating dtype, got {target}")

        def cast(array: np.ndarray) -> np.ndarray:
            # Integer buffers (counts, indices) keep their dtype, as in PyTorch.
            return array.astype(target, copy=False) if np.issubdtype(array.dtype, np.floating) else array

        return self._apply(cast)

    def float(self) -> Module:
        """Cast floating parameters and buffers to float32."""
        return self.to(np.float32)

    def half(self) -> Module:
        """Cast floating parameters and buffers to float16."""
        return self.to(np.float16)

    def double(self) -> Module:
        """Cast floating parameters and buffers to float64."""
        return self.to(np.float64)

    # --- calling ---------------------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; every subclass that is called defines it."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for hook in list(self._forward_pre_hooks.values()):
            replaced = hook(self, args)
            if replaced is not None:
                args = replaced if isinstance(replaced, tuple) else (replaced,)
        backward_hooked = bool(self._backward_hooks or self._backward_pre_hooks) and is_grad_enabled()
        if backward_hooked:  # Tensor inputs and outputs pass through identity nodes that run the hooks
            hook_state, args = module_hooks.wrap_inputs(self, args)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            replaced = hook(self, args, output)
            if replaced is not None:
                output = replaced
        if backward_hooked:
            output = module_hooks.wrap_outputs(hook_state, output)
        return output

    def register_forward_pre_hook(self, hook: ForwardPreHook) -> RemovableHandle:
        """Run ``hook(module, args)`` before ``forward``; a non-None result replaces ``args``."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook: ForwardHook) -> RemovableHandle:
        """Run ``hook(module, args, output)`` after ``forward``; a non-None result replaces the output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_full_backward_pre_hook(self, hook: BackwardPreHook) -> RemovableHandle:
        """Run ``hook(module, grad_output)`` when the gradients of this module's outputs are computed.

        ``grad_output`` is a tuple (one entry per Tensor output); a non-None result (a tuple, or one array
        for one output) replaces it, with the same shapes, else GradientError. Fires in backward passes
        through calls made with Tensors while grad mode was on (the inference path has no backward).
        """
        handle = RemovableHandle(self._backward_pre_hooks)
        self._backward_pre_hooks[handle.id] = hook
        return handle

    def register_full_backward_hook(self, hook: BackwardHook) -> RemovableHandle:
        """Run ``hook(module, grad_input, grad_output)`` once the gradients of this module's inputs are known.

        ``grad_input`` has one entry per Tensor positional argument (None where it does not require grad),
        ``grad_output`` one per Tensor output. A non-None result replaces ``grad_input`` (same count and
        shapes, else GradientError) for the layers before this module.
        """
        handle = RemovableHandle(self._backward_hooks)
        self._backward_hooks[handle.id] = hook
        return handle

    def has_forward_hooks(self) -> bool:
        """True when this module or any descendant has a forward hook or pre-hook registered.

        A fused engine that bypasses the per-layer ``__call__`` must check this first, or hooks would
        silently stop firing.
        """
        return any(m._forward_hooks or m._forward_pre_hooks for m in self.modules())

    # --- state dict (the work is in nn/state_dict.py) ------------------------------------------------
    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> StateDict:
        """Every parameter and persistent buffer of the tree by dotted key, in registration order.

        Arrays are copied unless ``keep_vars`` (then the Parameter objects and buffer arrays themselves).
        The returned :class:`~audioembed.nn.state_dict.StateDict` (a dict) also records each module's class
        version in ``.metadata`` (``{"": {"version": 1}, "conv1": {"version": 1}, ...}``), which
        :meth:`load_state_dict` uses to upgrade state saved by an older layout.
        """
        return collect_state(self, prefix, keep_vars)

    def _upgrade_state(self, state_dict: dict[str, Any], prefix: str, version: int) -> None:
        """Convert this module's entries in ``state_dict`` from layout ``version`` to the class's own.

        Called by :meth:`load_state_dict` (after the load pre-hooks) when the state records an older version
        for this module, or none (a plain dict, a file from before versions were recorded: version 1).
        Edit the entries under ``prefix`` in place (rename, reshape, add); ``state_dict`` is a private copy.
        Because metadata can be lost (``dict(state)``), an upgrade must leave state that is already in the
        new layout alone. The base class has had one layout: nothing to do.
        """

    def register_load_state_dict_pre_hook(self, hook: LoadPreHook) -> RemovableHandle:
        """Run ``hook(module, state_dict, prefix)`` before this module loads; it may rename keys in place.

        ``state_dict`` is a private copy of the caller's mapping; ``prefix`` is this module's key prefix.
        """
        handle = RemovableHandle(self._load_state_dict_pre_hooks)
        self._load_state_dict_pre_hooks[handle.id] = hook
        return handle

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> tuple[list[str], list[str]]:
        """Copy arrays from ``state_dict`` into the tree's parameters and persistent buffers, all or nothing.

        Every problem is collected over the whole tree and reported in one error, before anything is
        copied. Floating arrays of another precision are cast to the model's dtype; any other dtype or
        shape difference is an error. Loaded arrays are private copies.

        Returns
        -------
        missing_keys, unexpected_keys : list of str
            Only returned (instead of raised) when ``strict`` is False. Shape and dtype mismatches raise
            in both modes.

        Raises
        ------
        WeightsFormatError
            Listing every missing key, unexpected key and mismatch, naming this module's class.
        """
        return load_state(self, state_dict, strict)

    # --- printing --------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The layer's own settings, shown inside its ``repr`` parentheses; override in layers."""
        return ""

    def __repr__(self) -> str:
        lines = [line for line in self.extra_repr().split("\n") if line]
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {child_repr}")
        if not self._modules:
            return f"{type(self).__name__}({', '.join(lines)})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"
