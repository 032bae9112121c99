"""``Optimizer``: PyTorch's ``torch.optim.Optimizer`` contract over NumPy parameters.

An optimizer holds *parameter groups* (a list of dicts: ``"params"`` plus that group's options, defaults
filled in), a per-parameter ``state`` dict, and updates ``p.data`` in place from ``p.grad`` in :meth:`step`.
Its :meth:`state_dict` has PyTorch's structure: ``{"state": {index: {...}}, "param_groups": [{..., "params":
[indices]}]}``, indices numbering the parameters across groups in order, so a saved state loads into an
optimizer built the same way over another (e.g. freshly constructed) model.

A parameter is anything with an ndarray ``.data``, a ``.grad`` (ndarray or None) and a ``.requires_grad``:
:class:`~audioembed.nn.Parameter` and leaf tensors. Parameters whose ``.grad`` is None are skipped, as in
PyTorch. Writes are in place, so views and references to ``p.data`` stay valid; a read-only array (a weight
memory-mapped from a native file) is first replaced by a private writable copy. Every write is recorded with
:func:`audioembed.nn.inplace.mark_modified`, so cached fused plans (VGGish's fast path) rebuild themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from audioembed.errors import GradientError, InvalidInputError, InvalidOptionError
from audioembed.nn.autograd.grad_mode import enable_grad
from audioembed.nn.inplace import mark_modified

ParamGroup = dict[str, Any]
# Elements per slice when an update walks its arrays: the few temporaries of one slice stay in the CPU's L2
# cache, so an update reads and writes each array once instead of once per arithmetic operation.
CHUNK = 1 << 15


def chunked(*arrays: np.ndarray) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield matching 1-D slices (views) of same-shaped contiguous arrays, :data:`CHUNK` elements each.

    Elementwise updates give the same bits slice by slice as on whole arrays. Arrays that are not all
    C-contiguous or all F-contiguous (e.g. VGGish's output-major dense kernels, see
    :mod:`audioembed.nn.fused_dense`) would be copied by a reshape, losing the writes: they are yielded
    whole, once.
    """
    if all(a.flags.c_contiguous for a in arrays):
        flat = [a.reshape(-1) for a in arrays]  # views
    elif all(a.flags.f_contiguous for a in arrays):
        flat = [a.T.reshape(-1) for a in arrays]  # views: the transpose of an F array is C-contiguous
    else:
        yield arrays
        return
    for start in range(0, flat[0].size, CHUNK):
        yield tuple(f[start : start + CHUNK] for f in flat)


def is_parameter(obj: Any) -> bool:
    """Whether ``obj`` can be optimized: an ndarray ``.data`` plus ``.grad`` and ``.requires_grad``."""
    return (
        isinstance(getattr(obj, "data", None), np.ndarray)
        and hasattr(obj, "grad")
        and hasattr(obj, "requires_grad")
    )


def check_number(name: str, value: Any, *, low: float = 0.0, below: float | None = None) -> float:
    """``value`` as a float ``>= low`` (and ``< below`` when given), or InvalidOptionError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidOptionError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not (number >= low and (below is None or number < below)):  # also refuses NaN
        bound = f">= {low}" if below is None else f"in [{low}, {below})"
        raise InvalidOptionError(f"invalid {name}: {value!r} (expected a number {bound})")
    return number


class Optimizer:
    """Base class of the optimizers: parameter groups, per-parameter state, ``step`` and state dicts.

    Parameters
    ----------
    params : iterable of Parameter, or iterable of dict
        The parameters to optimize, or parameter groups: dicts with a ``"params"`` iterable and any options
        that override ``defaults`` for that group (e.g. a smaller ``lr`` for a pretrained backbone).
    defaults : dict
        Every option of the optimizer with its default value.

    Raises
    ------
    GradientError
        No parameter at all, or none that requires a gradient (a frozen model).
    InvalidInputError
        A parameter appears twice (in one group or in two).
    InvalidOptionError
        An option outside its domain, in the defaults or in a group.
    TypeError
        ``params`` is a single parameter or holds something that is not a parameter.
    """

    def __init__(self, params: Iterable[Any], defaults: Mapping[str, Any]) -> None:
        self.defaults: dict[str, Any] = dict(defaults)
        self._check_options(self.defaults)
        self.state: dict[Any, dict[str, Any]] = {}
        self.param_groups: list[ParamGroup] = []
        if is_parameter(params) or isinstance(params, np.ndarray):
            raise TypeError(
                "params must be an iterable of parameters or of dicts (e.g. model.parameters()), "
                f"got a single {type(params).__name__}"
            )
        groups = list(params)
        if not groups:
            raise GradientError("optimizer got an empty parameter list: there is nothing to train")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)
        if not any(p.requires_grad for group in self.param_groups for p in group["params"]):
            raise GradientError(
                f"none of the optimizer's {sum(len(g['params']) for g in self.param_groups)} parameters "
                "requires a gradient (a frozen model?): there is nothing to train; unfreeze the layers to "
                "train with requires_grad_(True)"
            )

    # --- groups --------------------------------------------------------------------------------------
    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group of parameters with its own options (missing ones taken from ``defaults``).

        Useful to unfreeze layers during fine-tuning. Raises the errors of the constructor.
        """
        if not isinstance(param_group, Mapping):
            raise TypeError(f"a parameter group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise InvalidInputError(
                f"a parameter group needs a 'params' entry, got keys {sorted(param_group)}"
            )
        params = param_group["params"]
        params = [params] if is_parameter(params) else list(params)
        for index, param in enumerate(params):
            if not is_parameter(param):
                raise TypeError(
                    f"the optimizer can only optimize parameters (with .data, .grad, .requires_grad), got "
                    f"{type(param).__name__} at position {index} of a group"
                )
            if not np.issubdtype(param.data.dtype, np.floating):
                raise TypeError(f"can only optimize floating-point parameters, got dtype {param.data.dtype}")
        if len({id(p) for p in params}) != len(params):
            raise InvalidInputError("a parameter group holds the same parameter more than once")
        taken = {id(p) for group in self.param_groups for p in group["params"]}
        shared = [p for p in params if id(p) in taken]
        if shared:
            raise InvalidInputError(
                f"{len(shared)} parameter(s) of the new group (first: {shared[0]!r}) already belong to "
                "another parameter group: a parameter may appear in one group only"
            )
        group = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        self._check_options(group)
        group["params"] = params
        self.param_groups.append(group)

    def _check_options(self, group: Mapping[str, Any]) -> None:
        """Raise InvalidOptionError for an option outside its domain; subclasses check theirs."""
        check_number("lr", group["lr"])

    # --- stepping ------------------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of every optimized parameter: to None (default, frees memory) or to zeros."""
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                elif param.grad.flags.writeable:
                    param.grad.fill(0)
                else:
                    param.grad = np.zeros_like(param.data)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient, in place, from its ``.grad``.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss (it runs before the update, with gradient recording
            on even when ``step`` is called under ``no_grad``, as in PyTorch); its value is returned.

        Raises
        ------
        GradientError
            A gradient whose shape differs from its parameter's.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._update_group(group)
        return loss

    def _update_group(self, group: ParamGroup) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define _update_group()")

    @staticmethod
    def _gradient(param: Any) -> np.ndarray:
        """``param``'s gradient, checked, in its data's dtype and memory order (read only: never written).

        The data's order (F for VGGish's output-major dense kernels, else C) lets :func:`chunked` walk all the
        arrays of an update in slices.
        """
        grad = np.asarray(param.grad)
        if grad.shape != param.data.shape:
            raise GradientError(
                f"gradient of shape {grad.shape} for {param!r}: it must have the parameter's shape"
            )
        data = param.data
        order = "F" if data.flags.f_contiguous and not data.flags.c_contiguous else "C"
        return np.asarray(grad, dtype=data.dtype, order=order)  # no copy when already so

    @staticmethod
    def _writable(param: Any) -> np.ndarray:
        """``param.data``, replaced first by a private copy when it is read-only (a memory-mapped weight)."""
        if not param.data.flags.writeable:
            param.data = np.array(param.data, copy=True)
        return param.data

    @staticmethod
    def _written(array: np.ndarray) -> None:
        """Tell caches built from ``array`` (fused inference plans) that its values changed."""
        mark_modified(array)

    # --- state dicts ---------------------------------------------------------------------------------
    def _expected_state(self, group: ParamGroup) -> set[str]:
        """The state keys a parameter of ``group`` has after its first update; subclasses define them."""
        return set()

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state, PyTorch's structure, with copies of every array.

        Returns
        -------
        dict
            ``"state"``: ``{index: {name: value}}`` for each parameter that has state (an array of the
            parameter's shape, or the integer ``"step"``), indices counting the parameters over all groups
            in order; ``"param_groups"``: each group's options with ``"params"`` as the list of indices.
        """
        index_of: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            start = len(index_of)
            for offset, param in enumerate(group["params"]):
                index_of[id(param)] = start + offset
            options = {k: v for k, v in group.items() if k != "params"}
            groups.append({**options, "params": list(range(start, len(index_of)))})
        state = {
            index_of[id(param)]: {
                k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for k, v in values.items()
            }
            for param, values in self.state.items()
            if id(param) in index_of
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load a state saved by :meth:`state_dict` of an optimizer of the same kind, built the same way.

        All or nothing: everything is checked before anything changes. Group options come from the saved
        state (learning rates included, as PyTorch does); the parameters stay this optimizer's. Arrays are
        copied and cast to their parameter's dtype.

        Raises
        ------
        InvalidInputError
            Not an optimizer state dict, another number of groups or of parameters in a group, a state for
            an unknown index, state keys of another optimizer, or an array of another shape (naming it).
        """
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"state", "param_groups"}:
            found = sorted(state_dict) if isinstance(state_dict, Mapping) else type(state_dict).__name__
            raise InvalidInputError(f"not an optimizer state dict (keys 'state' and 'param_groups'): {found}")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise InvalidInputError(
                f"the state dict has {len(saved_groups)} parameter group(s), this optimizer "
                f"{len(self.param_groups)}"
            )
        param_of: dict[int, tuple[Any, ParamGroup]] = {}
        new_groups = []
        for number, (saved, group) in enumerate(zip(saved_groups, self.param_groups, strict=True)):
            indices = list(saved.get("params", []))
            if len(indices) != len(group["params"]):
                raise InvalidInputError(
                    f"parameter group {number} of the state dict has {len(indices)} parameter(s), this "
                    f"optimizer's has {len(group['params'])}"
                )
            new_group = {**group, **{k: v for k, v in saved.items() if k != "params"}}
            self._check_options(new_group)
            new_group["params"] = group["params"]
            new_groups.append(new_group)
            for index, param in zip(indices, group["params"], strict=True):
                param_of[index] = (param, new_group)
        new_state: dict[Any, dict[str, Any]] = {}
        for index, values in dict(state_dict["state"]).items():
            if index not in param_of:
                raise InvalidInputError(
                    f"the state dict holds state for parameter {index!r}, which no group has"
                )
            param, group = param_of[index]
            new_state[param] = self._checked_state(index, dict(values), param, group)
        self.param_groups[:] = new_groups
        self.state = new_state

    def _checked_state(self, index: Any, values: dict[str, Any], param: Any, group: ParamGroup) -> dict:
        expected = self._expected_state(group)
        if set(values) != expected:
            raise InvalidInputError(
                f"state of parameter {index} has keys {sorted(values)}, {type(self).__name__} with these "
                f"options keeps {sorted(expected)}"
            )
        checked: dict[str, Any] = {}
        for name, value in values.items():
            if name == "step":
                step = float(np.asarray(value))  # PyTorch saves it as a float tensor
                if step < 0 or step != int(step):
                    raise InvalidInputError(
                        f"state of parameter {index}: step must be a count, got {value!r}"
                    )
                checked[name] = int(step)
                continue
            array = np.asarray(value)
            if array.shape != param.data.shape:
                raise InvalidInputError(
                    f"state {name!r} of parameter {index} has shape {array.shape}, the parameter "
                    f"{param.data.shape}"
                )
            checked[name] = np.array(array, dtype=param.data.dtype, copy=True)
        return checked

    # --- printing ------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for number, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {number}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join([*lines, ")"])
