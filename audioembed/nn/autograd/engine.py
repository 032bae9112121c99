"""The graph engine: nodes of a recorded graph and the reverse-mode pass over them.

A Tensor produced by a recorded operation points at the :class:`Node` that made it (``grad_fn``) and at its
output number there. A node knows, for each of its inputs, the *edge* ``(node, output_nr)`` that produced
that input, or None when the input needs no gradient; a leaf that requires grad is reached through its
:class:`AccumulateGrad` node. :func:`run_backward` counts each node's consumers, then runs the nodes in
reverse creation order as soon as all their consumers have delivered (so activations are freed early),
summing gradients that reach a node by several paths.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from audioembed.errors import GradientError
from audioembed.nn.autograd.grad_mode import no_grad

if TYPE_CHECKING:
    from audioembed.nn.autograd.tensor import Tensor

Edge = tuple["Node", int]
TensorHook = Callable[[np.ndarray], Any]
_sequence = itertools.count()  # creation order: later nodes run first in backward

FREED_MESSAGE = (
    "Trying to backward through the graph a second time (or to read saved arrays after they were "
    "freed): the first backward freed them. Pass retain_graph=True to the first backward to keep them."
)


class Node:
    """One recorded step: maps the gradients of its outputs to gradients of its inputs.

    Subclasses implement :meth:`apply`. ``output_meta`` holds each output's ``(shape, dtype)``, against
    which incoming gradients are checked.
    """

    # Set by subclasses whose apply() returns new arrays referenced nowhere else: the engine may then keep
    # them as a leaf's .grad without copying.
    fresh_gradients = False

    def __init__(self, next_edges: Sequence[Edge | None], output_meta: Sequence[tuple[tuple, np.dtype]]):
        self.next_edges = tuple(next_edges)
        self.output_meta = tuple(output_meta)
        self.sequence_nr = next(_sequence)
        self.pre_hooks: list[dict[int, TensorHook]] = [{} for _ in self.output_meta]  # per output
        self.freed = False

    def name(self) -> str:
        """Name shown in reprs and errors (``MulBackward``)."""
        return type(self).__name__

    def apply(self, grads: list[np.ndarray | None]) -> Sequence[np.ndarray | None]:
        """Gradients of the inputs (one per edge) from the gradients of the outputs (None = zero)."""
        raise NotImplementedError(f"{self.name()} does not define apply()")

    def release(self) -> None:
        """Free what was saved for backward; a later backward through this node raises GradientError."""
        self.freed = True

    def __repr__(self) -> str:
        return f"<{self.name()}>"


class AccumulateGrad(Node):
    """The sink of a leaf tensor that requires grad: adds the incoming gradient into its ``.grad``."""

    def __init__(self, variable: Tensor) -> None:
        super().__init__((), [(variable.shape, variable.dtype)])
        self.variable = variable
        self.pre_hooks = [variable._hooks]  # the leaf's own hooks run on the gradient before it lands

    def apply(self, grads: list[np.ndarray | None]) -> Sequence[np.ndarray | None]:
        raise GradientError("AccumulateGrad is run by the engine through accumulate()")

    def accumulate(self, grad: np.ndarray, owned: bool) -> None:
        """Add ``grad`` into the leaf's ``.grad`` (a new array on first arrival, then in place)."""
        variable = self.variable
        if variable.grad is None:
            variable.grad = grad if owned else grad.copy()
        elif variable.grad.shape != grad.shape:
            raise GradientError(
                f"the .grad of a leaf of shape {variable.shape} has shape {variable.grad.shape}: "
                "reset it (zero_grad()) before backward"
            )
        else:
            np.add(variable.grad, grad, out=variable.grad, casting="unsafe")

    def release(self) -> None:  # a leaf's sink holds nothing to free and serves every later backward
        pass


class _Buffer:
    """The gradients collected so far for one node's outputs, and whether the engine owns each array."""

    __slots__ = ("grads", "owned")

    def __init__(self, size: int) -> None:
        self.grads: list[np.ndarray | None] = [None] * size
        self.owned = [False] * size

    def add(self, index: int, grad: np.ndarray, owned: bool) -> None:
        current = self.grads[index]
        if current is None:
            self.grads[index], self.owned[index] = grad, owned
        elif self.owned[index]:
            np.add(current, grad, out=current)
        else:
            # out= keeps 0-d results arrays (a plain + would give a NumPy scalar)
            self.grads[index] = np.add(current, grad, out=np.empty(current.shape, current.dtype))
            self.owned[index] = True


def _checked(grad: Any, meta: tuple[tuple, np.dtype], what: str) -> np.ndarray:
    """``grad`` as an array of the expected shape and dtype, or a GradientError naming ``what``."""
    grad = np.asarray(grad)
    shape, dtype = meta
    if grad.shape != tuple(shape):
        raise GradientError(
            f"{what} returned a gradient of shape {grad.shape}, expected shape {tuple(shape)}"
        )
    return grad.astype(dtype, copy=False) if grad.dtype != dtype else grad


def _run_hooks(node: Node, grads: list[np.ndarray | None]) -> list[np.ndarray | None]:
    """The node's incoming gradients after its tensor hooks (a new list; replaced entries are new)."""
    grads = list(grads)
    for index, hooks in enumerate(node.pre_hooks):
        if not hooks or grads[index] is None:
            continue
        for hook in list(hooks.values()):
            replaced = hook(grads[index])
            if replaced is not None:
                replaced = replaced.data if hasattr(replaced, "grad_fn") else replaced  # a Tensor
                grads[index] = _checked(replaced, node.output_meta[index], f"a hook on {node.name()}'s input")
    return grads


def _count_consumers(roots: Sequence[Node]) -> dict[Node, int]:
    """For every node reachable from ``roots``, how many edges point at it (iterative: graphs are deep)."""
    consumers: dict[Node, int] = {}
    seen = set(roots)
    stack = list(roots)
    while stack:
        for edge in stack.pop().next_edges:
            if edge is None:
                continue
            node = edge[0]
            consumers[node] = consumers.get(node, 0) + 1
            if node not in seen:
                seen.add(node)
                stack.append(node)
    return consumers


def run_backward(roots: Sequence[tuple[Edge, np.ndarray]], retain_graph: bool = False) -> None:
    """Back-propagate ``grad`` from each root edge to every leaf that requires grad.

    Parameters
    ----------
    roots : sequence of ((node, output_nr), grad)
        Where the pass starts and the gradient of that output (its shape).
    retain_graph : bool
        Keep what the nodes saved, so that another backward may run through the same graph.
    """
    buffers: dict[Node, _Buffer] = {}
    for (node, index), grad in roots:
        buffers.setdefault(node, _Buffer(len(node.output_meta))).add(index, grad, False)
    consumers = _count_consumers(list(buffers))
    ready = [(-node.sequence_nr, node) for node in buffers if consumers.get(node, 0) == 0]
    heapq.heapify(ready)
    with no_grad():  # hooks and backward kernels that use Tensors must not record a graph of their own
        while ready:
            _, node = heapq.heappop(ready)
            buffer = buffers.pop(node)
            grads = _run_hooks(node, buffer.grads)
            if isinstance(node, AccumulateGrad):
                if grads[0] is not None:
                    node.accumulate(grads[0], buffer.owned[0] and grads[0] is buffer.grads[0])
                continue
            if node.freed:
                raise GradientError(f"{node.name()}: {FREED_MESSAGE}")
            results: Sequence[np.ndarray | None] = [None] * len(node.next_edges)
            if any(g is not None for g in grads):
                results = node.apply(grads)
            if not retain_graph:
                node.release()
            if len(results) != len(node.next_edges):
                raise GradientError(
                    f"{node.name()} returned {len(results)} gradients, expected {len(node.next_edges)} "
                    "(one per input of forward)"
                )
            for edge, grad in zip(node.next_edges, results, strict=True):
                if edge is None:
                    continue
                target, index = edge
                buffer = buffers.get(target)
                if buffer is None:
                    buffer = buffers[target] = _Buffer(len(target.output_meta))
                if grad is not None:
                    checked = _checked(grad, target.output_meta[index], f"{node.name()}")
                    buffer.add(index, checked, node.fresh_gradients and checked is grad)
                consumers[target] -= 1
                if consumers[target] == 0:
                    heapq.heappush(ready, (-target.sequence_nr, target))
