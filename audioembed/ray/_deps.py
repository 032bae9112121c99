"""Ray is optional: import it on first use, and say which extra installs it when it is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from audioembed.errors import MissingDependencyError

INSTALL_HINT = 'pip install "audioembed[ray]"'


def require_ray() -> ModuleType:
    """The ``ray`` package (with Ray Data), or :class:`MissingDependencyError` naming the extra.

    ``importlib`` with the absolute name: this module lives in ``audioembed.ray``, which must never be
    mistaken for the ``ray`` package itself.
    """
    try:
        ray = importlib.import_module("ray")
        importlib.import_module("ray.data")
    except ImportError as error:
        raise MissingDependencyError(
            f"the Ray engine needs Ray Data, which is not installed ({error}): {INSTALL_HINT}"
        ) from error
    return ray
