"""Build the model and postprocessor from any supported weights file."""

from __future__ import annotations

import logging
from os import PathLike

import numpy as np

from audioembed.errors import WeightsFormatError
from audioembed.nn.serialization import decode_versions
from audioembed.nn.state_dict import StateDict, outdated_modules
from audioembed.vggish import params
from audioembed.vggish.fast import DENSE_LAYERS
from audioembed.vggish.model import VGGish
from audioembed.vggish.postprocess import Postprocessor
from audioembed.vggish.weights import detect
from audioembed.vggish.weights.files import WeightsFile, read_weights

logger = logging.getLogger(__name__)


def load_vggish(path: str | PathLike[str], *, share_memory: bool = True) -> VGGish:
    """A :class:`VGGish` in eval mode holding the weights of ``path``.

    Parameters
    ----------
    path : str or PathLike
        Any supported format (native, TF V1 checkpoint, PyTorch port ``.pth``), detected by bytes.
    share_memory : bool
        For a native file, keep the parameters as read-only views of the memory-mapped file instead
        of private copies: loading costs no copy, and processes serving the same file share its pages.
        Ignored for other formats (they are converted, so the model owns its arrays).

    Returns
    -------
    VGGish

    Raises
    ------
    WeightsFormatError
        The file holds only PCA parameters, or no valid VGGish weights (see :func:`read_weights`).
    """
    return build_vggish(read_weights(path), share_memory=share_memory)


def build_vggish(weights: WeightsFile, *, share_memory: bool = True) -> VGGish:
    """A :class:`VGGish` in eval mode from an already read file (see :func:`load_vggish`).

    For callers that also need the file's format, metadata or sha256 without reading it twice.
    """
    if not weights.has_model:
        raise WeightsFormatError(
            f"{weights.path} holds only PCA parameters ({weights.format}), not model weights; "
            "pass it as the PCA file instead"
        )
    if weights.format == detect.NATIVE and weights.metadata.get("format_version") == "1":
        logger.warning(
            "%s is a native weights file of format 1 (dense kernels in TF's layout): it loads, but the dense "
            "layers run up to 1.8x slower than from format 2; rewrite it with "
            "`audioembed weights convert %s -o %s`",
            weights.path,
            weights.path,
            weights.path,
        )
    model = VGGish(initialize=False)
    state = StateDict(weights.tensors, metadata=decode_versions(weights.metadata, source=str(weights.path)))
    if share_memory and weights.format == detect.NATIVE and not outdated_modules(model, state):
        # Use the mapped views themselves, never a copy: read_native already checked every name, shape and
        # dtype, and pages shared with other processes are what keep a fleet of servers small.
        for key, parameter in model.named_parameters():
            parameter.data = weights.tensors[params.VARIABLES_BY_KEY[key].tf_name]
    else:
        # The fused dense stack runs fastest on output-major kernels (see weights.native), and
        # load_state_dict copies into each parameter's memory order: make the dense kernels F first
        # (zeros from calloc: no memory is touched until the copy).
        for name in DENSE_LAYERS:
            weight = getattr(model, name).weight
            weight.data = np.zeros(weight.data.shape, weight.data.dtype, order="F")
        # Validates names, shapes and dtypes, upgrades layouts older than the classes' own; copies.
        model.load_state_dict(state)
    model.eval()
    return model


def load_postprocessor(path: str | PathLike[str]) -> Postprocessor:
    """A :class:`Postprocessor` holding the PCA parameters of ``path``.

    Parameters
    ----------
    path : str or PathLike
        The official ``.npz``, the port's PCA ``.pth``, or a native file that holds PCA parameters.

    Raises
    ------
    WeightsFormatError
        The file has no PCA parameters, or malformed ones.
    """
    weights = read_weights(path)
    if weights.pca is None:
        raise WeightsFormatError(
            f"{path} ({weights.format}) holds no PCA parameters: pass vggish_pca_params.npz, the port's "
            "PCA .pth, or a native file converted with --pca"
        )
    postprocessor = Postprocessor()
    postprocessor.load_state_dict(weights.pca)
    postprocessor.eval()
    return postprocessor
