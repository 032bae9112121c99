"""The PyTorch port's state-dict keys and layouts ↔ the TF checkpoint's names and layouts.

The port (harritaylor/torchvggish) stores conv kernels OIHW ``[out, in, kh, kw]`` and dense weights
``[out, in]``; TF stores HWIO ``[kh, kw, in, out]`` and ``[in, out]``. Its fc1 input is already in
TF's NHWC flatten order (the port transposes activations before flattening), so a plain transpose is
the whole conversion. One explicit table, every shape checked, nothing partially loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audioembed.errors import WeightsFormatError
from audioembed.vggish import params

OIHW_TO_HWIO = (2, 3, 1, 0)  # conv kernels: [out, in, kh, kw] -> [kh, kw, in, out]
HWIO_TO_OIHW = (3, 2, 0, 1)
OUT_IN_TO_IN_OUT = (1, 0)  # dense weights: [out, in] -> [in, out] (its own inverse)


@dataclass(frozen=True)
class PortTensor:
    """One row of the mapping: a port key, its TF name, and the axes that take port layout to TF."""

    port_key: str
    tf_name: str
    to_tf_axes: tuple[int, ...] | None  # None: identity (biases)


def _rows(port_module: str, tf_scope: str, axes: tuple[int, ...]) -> tuple[PortTensor, PortTensor]:
    return (
        PortTensor(f"{port_module}.weight", f"vggish/{tf_scope}/weights", axes),
        PortTensor(f"{port_module}.bias", f"vggish/{tf_scope}/biases", None),
    )


# The port's `features` Sequential interleaves ReLU and MaxPool2d, hence the gaps in its indices;
# `embeddings` interleaves ReLU between its three Linear layers.
PORT_TENSORS: tuple[PortTensor, ...] = (
    *_rows("features.0", "conv1", OIHW_TO_HWIO),
    *_rows("features.3", "conv2", OIHW_TO_HWIO),
    *_rows("features.6", "conv3/conv3_1", OIHW_TO_HWIO),
    *_rows("features.8", "conv3/conv3_2", OIHW_TO_HWIO),
    *_rows("features.11", "conv4/conv4_1", OIHW_TO_HWIO),
    *_rows("features.13", "conv4/conv4_2", OIHW_TO_HWIO),
    *_rows("embeddings.0", "fc1/fc1_1", OUT_IN_TO_IN_OUT),
    *_rows("embeddings.2", "fc1/fc1_2", OUT_IN_TO_IN_OUT),
    *_rows("embeddings.4", "fc2", OUT_IN_TO_IN_OUT),
)
PORT_KEYS = frozenset(row.port_key for row in PORT_TENSORS)


def _inverse(axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(axes))


def is_port_state_dict(arrays: dict[str, np.ndarray]) -> bool:
    """Whether a dict's keys look like the port's (any ``features.*`` / ``embeddings.*`` key)."""
    return any(key.startswith(("features.", "embeddings.")) for key in arrays)


def port_to_tf(state: dict[str, np.ndarray], *, source: str = "state dict") -> dict[str, np.ndarray]:
    """Convert the port's state dict to TF names and layouts.

    Parameters
    ----------
    state : dict of str to np.ndarray
        Exactly the 18 keys of :data:`PORT_TENSORS`, float32, port layouts.
    source : str
        Named in error messages.

    Returns
    -------
    tensors : dict of str to np.ndarray
        By TF name, TF layouts, float32, C-contiguous.

    Raises
    ------
    WeightsFormatError
        Missing or unexpected keys, or a shape that does not transpose to the TF shape.
    """
    missing = sorted(PORT_KEYS - set(state))
    unexpected = sorted(set(state) - PORT_KEYS)
    if missing or unexpected:
        raise WeightsFormatError(
            f"{source} is not the VGGish PyTorch port's state dict: missing {missing}, "
            f"unexpected {unexpected}"
        )
    tensors = {}
    for row in PORT_TENSORS:
        array = state[row.port_key]
        expected = params.VARIABLES_BY_TF_NAME[row.tf_name].shape
        port_shape = (
            expected if row.to_tf_axes is None else tuple(expected[i] for i in _inverse(row.to_tf_axes))
        )
        if array.shape != port_shape:
            raise WeightsFormatError(
                f"{source}: {row.port_key} has shape {list(array.shape)}, expected {list(port_shape)} "
                f"(TF {row.tf_name} {list(expected)})"
            )
        converted = array if row.to_tf_axes is None else array.transpose(row.to_tf_axes)
        tensors[row.tf_name] = np.ascontiguousarray(converted)
    return tensors


def tf_to_port(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inverse of :func:`port_to_tf`: TF names and layouts to the port's keys and layouts."""
    return {
        row.port_key: np.ascontiguousarray(
            tensors[row.tf_name]
            if row.to_tf_axes is None
            else tensors[row.tf_name].transpose(_inverse(row.to_tf_axes))
        )
        for row in PORT_TENSORS
    }
