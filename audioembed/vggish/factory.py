"""VGGish in the model registry: ``audioembed.create_model("vggish", pretrained=True)``."""

from __future__ import annotations

from pathlib import Path

from audioembed.nn.registry import register_model
from audioembed.vggish.model import VGGish
from audioembed.vggish.weights.loaders import load_vggish
from audioembed.vggish.weights.resolve import resolve_weights


def official_weights() -> Path:
    """The official weights: ``$AUDIOEMBED_WEIGHTS`` or the cache that ``audioembed weights download`` fills.

    Never downloads (creating a model should not reach the network); when nothing is found the
    ``WeightsNotFoundError`` says which command fetches them.
    """
    return resolve_weights()


@register_model("vggish", pretrained=official_weights)
def vggish(weights: Path | None = None) -> VGGish:
    """Google's VGGish: log-mel examples [N, 96, 64] -> raw 128-d embeddings (any supported weights format).

    Parameters
    ----------
    weights : Path, optional
        A native ``.safetensors``, TF V1 checkpoint or PyTorch-port ``.pth``; the model is then in eval
        mode with its parameters memory-mapped from a native file. Without it: random initial weights,
        training mode.
    """
    return VGGish() if weights is None else load_vggish(weights)
