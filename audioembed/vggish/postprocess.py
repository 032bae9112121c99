"""``Postprocessor``: the reference's PCA whitening and 8-bit quantization of raw VGGish embeddings.

For embeddings ``e`` ``[N, 128]``, eigenvectors ``E`` ``[128, 128]`` (rows = output dims) and means ``μ``
``[128]`` (tensorflow/models ``vggish_postprocess.py``):

1. ``p = (e − μ) · Eᵀ`` in float64 (the official parameters are float64);
2. clip ``p`` to ``[QUANTIZE_MIN_VAL, QUANTIZE_MAX_VAL]`` = [−2, 2];
3. ``(p − min) × 255 / 4``;
4. **truncate** to uint8 (``astype``), as the reference does — not round.

Gradients: :meth:`Postprocessor.pca_applied` is linear and differentiable (given a Tensor it returns a
recorded Tensor); the clipping and quantization of :meth:`Postprocessor.forward` have no useful gradient
(zero almost everywhere), so ``forward`` refuses a Tensor that requires grad instead of silently cutting
the graph: train on ``pca_applied``'s output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from audioembed.errors import GradientError, InvalidInputError, ShapeError
from audioembed.nn import Module, Tensor, is_grad_enabled
from audioembed.vggish import params

_DIM = params.EMBEDDING_SIZE


def _normalize_means(means: ArrayLike) -> np.ndarray:
    """Accept means as (128,), (128, 1) or (1, 128) (all seen in published files); return (128,)."""
    means = np.asarray(means)
    if means.shape not in ((_DIM,), (_DIM, 1), (1, _DIM)):
        raise ShapeError(
            f"PCA means must have shape ({_DIM},), ({_DIM}, 1) or (1, {_DIM}), got {means.shape}"
        )
    return means.reshape(_DIM)  # [128]


def _check_eigen_vectors(eigen_vectors: ArrayLike) -> np.ndarray:
    eigen_vectors = np.asarray(eigen_vectors)
    if eigen_vectors.shape != (_DIM, _DIM):
        raise ShapeError(f"PCA eigenvectors must have shape ({_DIM}, {_DIM}), got {eigen_vectors.shape}")
    return eigen_vectors


class Postprocessor(Module):
    """PCA-whiten and quantize raw embeddings: float ``[N, 128]`` → uint8 ``[N, 128]``.

    The PCA matrix and means are float64 **buffers** (constants, not parameters), under the state-dict
    keys ``pca_eigen_vectors`` and ``pca_means`` — the array names of the official ``.npz``, so
    ``Postprocessor().load_state_dict(dict(np.load(path)))`` works.

    Parameters
    ----------
    pca_eigen_vectors : array_like [shape=(128, 128)], optional
        Rows are output PCA dimensions, columns input dimensions. Without it (and the means) the
        postprocessor starts as the identity with zero means, to be filled by :meth:`load_state_dict`.
    pca_means : array_like [shape=(128,) or (128, 1) or (1, 128)], optional
        Subtracted before projecting.
    """

    def __init__(
        self, pca_eigen_vectors: ArrayLike | None = None, pca_means: ArrayLike | None = None
    ) -> None:
        super().__init__()
        if (pca_eigen_vectors is None) != (pca_means is None):
            raise InvalidInputError("Postprocessor needs both pca_eigen_vectors and pca_means, or neither")
        if pca_eigen_vectors is None:
            pca_eigen_vectors, pca_means = np.eye(_DIM), np.zeros(_DIM)
        eigen_vectors = _check_eigen_vectors(pca_eigen_vectors).astype(np.float64)
        means = _normalize_means(pca_means).astype(np.float64)
        self.register_buffer(params.PCA_EIGEN_VECTORS_NAME, eigen_vectors)
        self.register_buffer(params.PCA_MEANS_NAME, means)
        self.register_load_state_dict_pre_hook(_normalize_loaded_means)

    @classmethod
    def from_params(cls, pca_eigen_vectors: ArrayLike, pca_means: ArrayLike) -> Postprocessor:
        """A postprocessor holding these PCA parameters (validated, converted to float64), in eval mode.

        Parameters
        ----------
        pca_eigen_vectors : array_like [shape=(128, 128)]
        pca_means : array_like [shape=(128,) or (128, 1) or (1, 128)]
        """
        postprocessor = cls(pca_eigen_vectors, pca_means)
        postprocessor.eval()
        return postprocessor

    def pca_applied(self, embeddings: ArrayLike | Tensor) -> np.ndarray | Tensor:
        """Project embeddings onto the PCA basis, before clipping.

        Parameters
        ----------
        embeddings : array_like or Tensor [shape=(N, 128), floating]

        Returns
        -------
        projected : np.ndarray or Tensor [shape=(N, 128), float64]
            A Tensor (recorded for backward when needed) for a Tensor input.
        """
        e = embeddings.data if isinstance(embeddings, Tensor) else np.asarray(embeddings)
        if e.ndim != 2 or e.shape[1] != _DIM:
            raise ShapeError(f"Postprocessor expects embeddings of shape [N, {_DIM}], got shape {e.shape}")
        if not np.issubdtype(e.dtype, np.floating):
            raise InvalidInputError(f"Postprocessor expects floating-point embeddings, got dtype {e.dtype}")
        bad = np.count_nonzero(~np.isfinite(e))
        if bad:
            # NaN would turn into an arbitrary byte in the uint8 cast: refuse instead.
            raise InvalidInputError(f"Postprocessor got {bad} non-finite embedding values (NaN or inf)")
        source = embeddings if isinstance(embeddings, Tensor) else e  # a Tensor keeps its graph
        centered = source.astype(np.float64) - self.pca_means  # [N, 128]
        return centered @ self.pca_eigen_vectors.T  # [N, 128] @ [128, 128]ᵀ

    def forward(self, embeddings: ArrayLike | Tensor) -> np.ndarray | Tensor:
        """Whiten and quantize.

        Parameters
        ----------
        embeddings : array_like or Tensor [shape=(N, 128), floating]
            Raw VGGish embeddings; N may be 0 or 1 (the output rank never depends on N).

        Returns
        -------
        quantized : np.ndarray [shape=(N, 128), uint8]
            A Tensor (never recorded) for a Tensor input.

        Raises
        ------
        GradientError
            For a Tensor that requires grad while grad mode is on: quantization has no gradient.
        """
        if isinstance(embeddings, Tensor):
            if embeddings.requires_grad and is_grad_enabled():
                raise GradientError(
                    "Postprocessor quantization has no gradient: differentiate pca_applied() instead, or "
                    "quantize under no_grad() / a detached tensor"
                )
            return Tensor(self.forward(embeddings.data))
        clipped = np.clip(self.pca_applied(embeddings), params.QUANTIZE_MIN_VAL, params.QUANTIZE_MAX_VAL)
        scaled = (clipped - params.QUANTIZE_MIN_VAL) * params.QUANTIZE_SCALE  # in [0, 255]
        return scaled.astype(np.uint8)  # truncation, as the reference


def _normalize_loaded_means(module: Module, state: dict[str, Any], prefix: str) -> None:
    """Load pre-hook: reshape means stored as (128, 1) or (1, 128) to the buffer's (128,)."""
    key = prefix + params.PCA_MEANS_NAME
    if key in state and np.shape(state[key]) in ((_DIM, 1), (1, _DIM)):
        state[key] = np.asarray(state[key]).reshape(_DIM)  # [128]
