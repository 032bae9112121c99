"""Module backward hooks with PyTorch's semantics, as two identity nodes around a module call.

``register_full_backward_pre_hook(hook(module, grad_output))`` and
``register_full_backward_hook(hook(module, grad_input, grad_output))``: when a module with such hooks is
called with Tensors while grad mode is on, its Tensor inputs pass through one identity node and its Tensor
outputs through another. In backward, the output node sees the gradients of the outputs first (the
pre-hooks run there and may replace them); the input node fires once the gradients of all inputs are
known (the full hooks run there and may replace them). ``grad_input`` has one entry per Tensor positional
argument, None for those that do not require grad; if none does, the full hooks run at the output node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from audioembed.errors import GradientError
from audioembed.nn.autograd.engine import Edge, Node
from audioembed.nn.autograd.tensor import Tensor

if TYPE_CHECKING:
    from audioembed.nn.module import Module


def _replace(
    current: tuple[np.ndarray | None, ...], replaced: Any, what: str
) -> tuple[np.ndarray | None, ...]:
    """Check a hook's replacement gradients against the current ones (count and shapes)."""
    if replaced is None:
        return current
    items = replaced if isinstance(replaced, (tuple, list)) else (replaced,)
    if len(items) != len(current):
        raise GradientError(f"{what} returned {len(items)} gradient(s), expected {len(current)}")
    result = []
    for new, old in zip(items, current, strict=True):
        new = new.data if isinstance(new, Tensor) else new
        if new is not None and old is not None and np.shape(new) != old.shape:
            raise GradientError(f"{what} returned a gradient of shape {np.shape(new)}, expected {old.shape}")
        result.append(None if new is None else np.asarray(new))
    return tuple(result)


class _HookState:
    """What the two nodes of one module call share."""

    def __init__(self, module: Module, num_inputs: int) -> None:
        self.module = module
        self.num_inputs = num_inputs  # Tensor positional arguments (grad_input's length)
        self.input_slots: list[int | None] = []  # per Tensor argument: its output number of the input node
        self.grad_output: tuple[np.ndarray | None, ...] = ()

    def run_full_hooks(self, grad_input: tuple[np.ndarray | None, ...]) -> tuple[np.ndarray | None, ...]:
        module = self.module
        for hook in list(module._backward_hooks.values()):
            name = f"the full backward hook {getattr(hook, '__name__', hook)!r} of {type(module).__name__}"
            grad_input = _replace(grad_input, hook(module, grad_input, self.grad_output), name)
        return grad_input


class _InputHookNode(Node):
    """Identity over a module's inputs that require grad; runs the full backward hooks."""

    def __init__(self, state: _HookState, edges: Sequence[Edge], meta: Sequence[tuple[tuple, np.dtype]]):
        super().__init__(edges, meta)
        self.state = state

    def name(self) -> str:
        return f"BackwardHookFunctionBackward({type(self.state.module).__name__} inputs)"

    def apply(self, grads: list[np.ndarray | None]) -> Sequence[np.ndarray | None]:
        state = self.state
        grad_input = tuple(None if slot is None else grads[slot] for slot in state.input_slots)
        grad_input = state.run_full_hooks(grad_input)
        return [grad_input[i] for i, slot in enumerate(state.input_slots) if slot is not None]


class _OutputHookNode(Node):
    """Identity over a module's outputs; runs the pre-hooks (the full hooks too if no input needs grad)."""

    def __init__(self, state: _HookState, edges: Sequence[Edge], meta: Sequence[tuple[tuple, np.dtype]]):
        super().__init__(edges, meta)
        self.state = state

    def name(self) -> str:
        return f"BackwardHookFunctionBackward({type(self.state.module).__name__} outputs)"

    def apply(self, grads: list[np.ndarray | None]) -> Sequence[np.ndarray | None]:
        state = self.state
        module = state.module
        grad_output = tuple(grads)
        for hook in list(module._backward_pre_hooks.values()):
            name = f"the backward pre-hook {getattr(hook, '__name__', hook)!r} of {type(module).__name__}"
            grad_output = _replace(grad_output, hook(module, grad_output), name)
        state.grad_output = grad_output
        if all(slot is None for slot in state.input_slots):
            state.run_full_hooks((None,) * state.num_inputs)
        return list(grad_output)


def wrap_inputs(module: Module, args: tuple[Any, ...]) -> tuple[_HookState, tuple[Any, ...]]:
    """Route the Tensor positional arguments that require grad through an input hook node."""
    tensors = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    state = _HookState(module, len(tensors))
    needing = [i for i in tensors if args[i].requires_grad]
    state.input_slots = [needing.index(i) if i in needing else None for i in tensors]
    if not needing:
        return state, args
    node = _InputHookNode(
        state, [args[i]._edge() for i in needing], [(args[i].shape, args[i].dtype) for i in needing]
    )
    wrapped = list(args)
    for slot, i in enumerate(needing):
        wrapped[i] = Tensor._from_node(args[i].data, node, slot)
    return state, tuple(wrapped)


def wrap_outputs(state: _HookState, output: Any) -> Any:
    """Route the module's Tensor output(s) that require grad through an output hook node."""
    items = output if isinstance(output, tuple) else (output,)
    needing = [i for i, o in enumerate(items) if isinstance(o, Tensor) and o.requires_grad]
    if not needing:
        return output
    node = _OutputHookNode(
        state, [items[i]._edge() for i in needing], [(items[i].shape, items[i].dtype) for i in needing]
    )
    wrapped = list(items)
    for slot, i in enumerate(needing):
        wrapped[i] = Tensor._from_node(items[i].data, node, slot)
    return tuple(wrapped) if isinstance(output, tuple) else wrapped[0]
