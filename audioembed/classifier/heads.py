"""Classifier heads on VGGish embeddings: a logistic layer or a small MLP, with their input normalisation.

A head sees one 128-d embedding per 0.96 s window and returns one logit per class. Its input is either the
raw float32 embedding or the PCA-whitened uint8 one (dequantized back to the reference's [-2, 2] range);
either way it is standardised with the training set's per-dimension mean and standard deviation, kept as
buffers so a saved head carries them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from audioembed import nn
from audioembed.errors import InvalidOptionError, ShapeError
from audioembed.vggish.params import EMBEDDING_SIZE

MODELS = ("logistic", "mlp")
FEATURES = ("raw", "quantized")
POOLS = ("mean", "max")

# The reference postprocessor clips whitened values to [-2, 2] and maps them linearly onto 0..255.
_QUANTIZE_MIN, _QUANTIZE_MAX = -2.0, 2.0


@dataclass(frozen=True)
class HeadConfig:
    """The architecture of a head; travels inside the classifier file so loading never guesses.

    Attributes
    ----------
    num_classes : int
        Outputs, one per label.
    model : {"logistic", "mlp"}
        One linear layer, or linear -> ReLU -> dropout -> linear.
    features : {"raw", "quantized"}
        Raw float32 embeddings, or the PCA-whitened uint8 ones.
    pool : {"mean", "max"}
        How window scores become a clip score.
    hidden : int
        Width of the MLP's hidden layer (unused by the logistic head).
    dropout : float
        Dropout probability after the MLP's hidden layer during training (unused by the logistic head).
    """

    num_classes: int
    model: str = "logistic"
    features: str = "raw"
    pool: str = "mean"
    hidden: int = 256  # wide enough for a few hundred classes, small enough to train in seconds
    dropout: float = 0.2  # the usual light regularisation for a few hundred clips

    def __post_init__(self) -> None:
        if not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise InvalidOptionError(f"a classifier needs at least 2 classes, got {self.num_classes!r}")
        for name, allowed in (("model", MODELS), ("features", FEATURES), ("pool", POOLS)):
            if getattr(self, name) not in allowed:
                raise InvalidOptionError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not isinstance(self.hidden, int) or self.hidden < 1:
            raise InvalidOptionError(f"hidden must be a positive integer, got {self.hidden!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise InvalidOptionError(f"dropout must be in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class ClassifierHead(nn.Module):
    """Logits ``[N, C]`` from normalised embeddings ``[N, 128]``.

    Parameters
    ----------
    config : HeadConfig
    rng : np.random.Generator, optional
        Initialises the weights (seeded runs are reproducible).
    """

    def __init__(self, config: HeadConfig, *, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", np.zeros(EMBEDDING_SIZE, np.float32))
        self.register_buffer("feature_scale", np.ones(EMBEDDING_SIZE, np.float32))  # 1 / std
        if config.model == "logistic":
            self.layers = nn.Sequential(nn.Linear(EMBEDDING_SIZE, config.num_classes, rng=rng))
        else:
            # Dropout draws its masks from a generator derived from ``rng``, so a seeded run is repeatable.
            dropout_rng = np.random.default_rng(rng.integers(2**63)) if rng is not None else None
            self.layers = nn.Sequential(
                nn.Linear(EMBEDDING_SIZE, config.hidden, rng=rng),
                nn.ReLU(),
                nn.Dropout(config.dropout, rng=dropout_rng),
                nn.Linear(config.hidden, config.num_classes, rng=rng),
            )

    def fit_normalization(self, features: np.ndarray) -> None:
        """Set the buffers from training features ``[M, 128]`` (raw float32 or uint8, as configured)."""
        values = self.dequantize(features).astype(np.float64)
        std = values.std(axis=0)
        # A constant dimension carries no information: leave it unscaled instead of dividing by zero.
        self.feature_mean = values.mean(axis=0).astype(np.float32)
        self.feature_scale = np.where(std > 1e-8, 1.0 / np.maximum(std, 1e-8), 1.0).astype(np.float32)

    def dequantize(self, features: np.ndarray) -> np.ndarray:
        """The configured features as float32 ``[M, 128]``: raw as is, uint8 back to [-2, 2]."""
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != EMBEDDING_SIZE:
            raise ShapeError(f"features must be [N, {EMBEDDING_SIZE}], got {list(features.shape)}")
        if self.config.features == "quantized":
            if features.dtype != np.uint8:
                raise ShapeError(f"this head takes uint8 quantized embeddings, got dtype {features.dtype}")
            step = (_QUANTIZE_MAX - _QUANTIZE_MIN) / 255.0
            return (features.astype(np.float32) * np.float32(step) + np.float32(_QUANTIZE_MIN)).astype(
                np.float32
            )
        if not np.issubdtype(features.dtype, np.floating):
            raise ShapeError(f"this head takes float32 raw embeddings, got dtype {features.dtype}")
        return features.astype(np.float32, copy=False)

    def normalize(self, features: np.ndarray) -> np.ndarray:
        """Dequantized and standardised features, float32 ``[M, 128]``: what :meth:`forward` takes."""
        return (self.dequantize(features) - self.feature_mean) * self.feature_scale

    def forward(self, x):
        """Logits ``[N, C]`` from normalised features ``[N, 128]`` (an ndarray, or a Tensor in training)."""
        return self.layers(x)

    def extra_repr(self) -> str:
        return f"model={self.config.model}, features={self.config.features}, pool={self.config.pool}"


def scores_from_logits(logits: np.ndarray, *, multi_label: bool) -> np.ndarray:
    """Class scores in [0, 1]: softmax over classes, or independent sigmoids for a multi-label head.

    Parameters
    ----------
    logits : np.ndarray [shape=(N, C)]

    Returns
    -------
    np.ndarray [shape=(N, C), float32]
    """
    logits = np.asarray(logits, dtype=np.float64)
    if multi_label:
        scores = 0.5 * (1.0 + np.tanh(0.5 * logits))  # the sigmoid, without overflow in exp
    else:
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        scores = shifted / shifted.sum(axis=1, keepdims=True)
    return scores.astype(np.float32)


def pool_scores(window_scores: np.ndarray, pool: str) -> np.ndarray:
    """One clip score per class from window scores ``[N, C]``: their mean or max; zeros when N = 0."""
    window_scores = np.asarray(window_scores, dtype=np.float32)
    if window_scores.ndim != 2:
        raise ShapeError(f"window scores must be [N, C], got {list(window_scores.shape)}")
    if window_scores.shape[0] == 0:
        return np.zeros(window_scores.shape[1], np.float32)
    if pool == "max":
        return window_scores.max(axis=0)
    if pool == "mean":
        return window_scores.mean(axis=0, dtype=np.float64).astype(np.float32)
    raise InvalidOptionError(f"pool must be one of {POOLS}, got {pool!r}")
