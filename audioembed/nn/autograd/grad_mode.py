"""Grad mode: whether operations on Tensors record a graph, per thread (``no_grad`` / ``enable_grad``)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_state = threading.local()  # each thread starts with grad mode on, as in PyTorch


def is_grad_enabled() -> bool:
    """Whether operations on Tensors in this thread currently record a graph (True unless disabled)."""
    return getattr(_state, "enabled", True)


def _set(enabled: bool) -> None:
    _state.enabled = enabled


class _GradMode:
    """A context manager and decorator that sets grad mode for its block, then restores the previous one."""

    _enabled: bool

    def __init__(self) -> None:
        self._previous: list[bool] = []  # a stack, so one instance may be entered re-entrantly

    def __enter__(self) -> None:
        self._previous.append(is_grad_enabled())
        _set(self._enabled)

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        _set(self._previous.pop())

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with type(self)():  # a fresh instance per call: decorated functions may run in several threads
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class no_grad(_GradMode):  # noqa: N801 (PyTorch's name)
    """Disable graph recording in this thread: ``with no_grad(): ...`` or ``@no_grad()``.

    Operations on Tensors still return Tensors, but with no ``grad_fn``, and they keep nothing for backward.
    """

    _enabled = False


class enable_grad(_GradMode):  # noqa: N801 (PyTorch's name)
    """Re-enable graph recording in this thread, e.g. inside a ``no_grad`` block."""

    _enabled = True


class set_grad_enabled(_GradMode):  # noqa: N801 (PyTorch's name)
    """Set grad mode to ``mode`` for the block (``with set_grad_enabled(training): ...``)."""

    def __init__(self, mode: bool) -> None:
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled takes a bool, got {mode!r}")
        super().__init__()
        self._enabled = mode

    def __call__(self, fn: F) -> F:
        mode = self._enabled

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]
