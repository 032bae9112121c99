"""``RemovableHandle``: what every ``register_*_hook`` method returns (Modules and Tensors alike)."""

from __future__ import annotations

import itertools
from typing import Any

_hook_ids = itertools.count()  # one counter for every handle, so ids never collide across owners


class RemovableHandle:
    """Returned by the ``register_*_hook`` methods; :meth:`remove` unregisters the hook (idempotent)."""

    def __init__(self, hooks: dict[int, Any]) -> None:
        self._hooks = hooks
        self.id = next(_hook_ids)

    def remove(self) -> None:
        """Unregister the hook; removing twice is harmless."""
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()
