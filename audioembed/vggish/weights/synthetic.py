"""Deterministic synthetic VGGish weights and PCA parameters, for demos and tests.

Not trained: embeddings computed with them mean nothing, and every file holding them says so in
its metadata (``synthetic: "true"``). They are scaled so signals keep their size through the 11
layers: He initialisation (variance 2 / fan-in) before each ReLU, variance 1 / fan-in for fc2, which
has no activation. The synthetic PCA is a random rotation scaled so quantized outputs use the range.
"""

from __future__ import annotations

import numpy as np

from audioembed.errors import InvalidOptionError
from audioembed.vggish import params

BIAS_STD = 0.01  # small but non-zero, so a dropped bias changes the output
PCA_SCALE = 0.25  # synthetic raw embeddings have std ~2-6 on log-mel input; keep most inside ±2
PCA_MEAN_STD = 0.1


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidOptionError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def synthesize_weights(seed: int) -> dict[str, np.ndarray]:
    """Generate VGGish weights from a seed.

    Parameters
    ----------
    seed : int
        Non-negative; the same seed gives bit-identical weights.

    Returns
    -------
    tensors : dict of str to np.ndarray
        The 18 tensors by TF name, TF layouts (HWIO kernels, [in, out] dense weights), float32.
    """
    rng = np.random.default_rng([_check_seed(seed), 0])  # stream 0: weights, stream 1: PCA
    tensors = {}
    for variable in params.VARIABLES:
        if variable.tf_name.endswith("/biases"):
            values = rng.standard_normal(variable.shape, dtype=np.float32) * np.float32(BIAS_STD)
        else:
            fan_in = int(np.prod(variable.shape[:-1]))  # kh * kw * in for kernels, in for dense
            gain = 1.0 if variable.tf_name.startswith("vggish/fc2/") else 2.0  # no ReLU after fc2
            values = rng.standard_normal(variable.shape, dtype=np.float32)
            values *= np.float32(np.sqrt(gain / fan_in))
        tensors[variable.tf_name] = values
    return tensors


def synthesize_pca(seed: int) -> dict[str, np.ndarray]:
    """Generate PCA parameters from a seed: a scaled random rotation and small means.

    Returns
    -------
    pca : dict of str to np.ndarray
        ``pca_eigen_vectors`` float64 [128, 128] and ``pca_means`` float64 [128].
    """
    rng = np.random.default_rng([_check_seed(seed), 1])
    size = params.EMBEDDING_SIZE
    q, r = np.linalg.qr(rng.standard_normal((size, size)))
    rotation = q * np.sign(np.diag(r))  # sign fix: a unique (Haar-distributed) rotation per seed
    return {
        params.PCA_EIGEN_VECTORS_NAME: rotation * PCA_SCALE,
        params.PCA_MEANS_NAME: rng.standard_normal(size) * PCA_MEAN_STD,
    }
