"""VGGish PCA parameters: the official ``vggish_pca_params.npz`` and shared validation.

Postprocessing needs ``pca_eigen_vectors`` [128, 128] (rows = output dims) and ``pca_means`` [128],
both float64 as the reference computes in float64. Files in the wild store the means as (128,),
(128, 1) or (1, 128); all three are accepted and flattened.
"""

from __future__ import annotations

import tokenize
from os import PathLike
from pathlib import Path

import numpy as np

from audioembed.errors import WeightsFormatError
from audioembed.vggish import params
from audioembed.vggish.weights.torch_pickle import ZIP_ERRORS

PCA_NAMES = (params.PCA_EIGEN_VECTORS_NAME, params.PCA_MEANS_NAME)
_SIZE = params.EMBEDDING_SIZE


def check_pca(arrays: dict[str, np.ndarray], *, source: str) -> dict[str, np.ndarray]:
    """Validate and normalise PCA parameters.

    Parameters
    ----------
    arrays : dict of str to np.ndarray
        Holding ``pca_eigen_vectors`` [128, 128] and ``pca_means`` [128] / [128, 1] / [1, 128]
        (other keys are an error: a PCA file holds nothing else).
    source : str
        Named in error messages.

    Returns
    -------
    pca : dict of str to np.ndarray
        ``pca_eigen_vectors`` float64 [128, 128] and ``pca_means`` float64 [128], C-contiguous.

    Raises
    ------
    WeightsFormatError
        Missing or extra keys, wrong shapes, non-float or non-finite values.
    """
    missing = [name for name in PCA_NAMES if name not in arrays]
    extra = sorted(set(arrays) - set(PCA_NAMES))
    if missing or extra:
        raise WeightsFormatError(
            f"{source} is not a VGGish PCA parameter file: missing {missing}, unexpected {extra}"
        )
    eigen = arrays[params.PCA_EIGEN_VECTORS_NAME]
    means = arrays[params.PCA_MEANS_NAME]
    if eigen.shape != (_SIZE, _SIZE):
        raise WeightsFormatError(
            f"{source}: {params.PCA_EIGEN_VECTORS_NAME} has shape {list(eigen.shape)}, "
            f"expected [{_SIZE}, {_SIZE}]"
        )
    if means.shape not in ((_SIZE,), (_SIZE, 1), (1, _SIZE)):
        raise WeightsFormatError(
            f"{source}: {params.PCA_MEANS_NAME} has shape {list(means.shape)}, expected [{_SIZE}] "
            f"(or [{_SIZE}, 1] / [1, {_SIZE}])"
        )
    result = {}
    for name, array in ((params.PCA_EIGEN_VECTORS_NAME, eigen), (params.PCA_MEANS_NAME, means)):
        if array.dtype.kind != "f":
            raise WeightsFormatError(f"{source}: {name} has dtype {array.dtype}, expected floating point")
        if not np.all(np.isfinite(array)):
            raise WeightsFormatError(f"{source}: {name} holds non-finite values")
        result[name] = np.ascontiguousarray(array, dtype=np.float64)
    result[params.PCA_MEANS_NAME] = result[params.PCA_MEANS_NAME].reshape(_SIZE)  # (128,1)|(1,128) -> (128,)
    return result


def read_pca_npz(path: str | PathLike[str]) -> dict[str, np.ndarray]:
    """Read ``vggish_pca_params.npz`` safely (no pickles) and validate it with :func:`check_pca`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    # np.load of a corrupted zip raises any of these; a corrupted .npy header (parsed by tokenize and
    # ast.literal_eval) adds the rest.
    except (*ZIP_ERRORS, tokenize.TokenError, SyntaxError, TypeError, KeyError, MemoryError) as error:
        raise WeightsFormatError(f"{path} is not a readable .npz of numeric arrays: {error}") from error
    return check_pca(arrays, source=str(path))
