"""The classifier heads as entries of the model registry: ``create_model("classifier_head_mlp", ...)``.

``create_model("classifier_head_logistic", num_classes=5)`` builds a fresh (untrained) head;
``create_model("classifier_head_mlp", weights="c.safetensors")`` loads the head of a classifier file written
by ``audioembed train``, in eval mode, after checking the file holds that kind of head. (To classify audio,
``Classifier.load`` also attaches the labels and checks the VGGish weights; the registry gives the Module.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audioembed.classifier.file import read_classifier
from audioembed.classifier.heads import ClassifierHead, HeadConfig
from audioembed.errors import ClassifierError
from audioembed.nn.registry import register_model


def _build(
    model: str,
    weights: Path | None,
    *,
    num_classes: int,
    features: str,
    pool: str,
    hidden: int,
    dropout: float,
    seed: int | None,
) -> ClassifierHead:
    if weights is None:
        config = HeadConfig(num_classes, model, features, pool, hidden, dropout)
        return ClassifierHead(config, rng=np.random.default_rng(seed))
    contents = read_classifier(weights)
    if contents.config.model != model:
        raise ClassifierError(
            f"{weights} holds a {contents.config.model!r} head, not a {model!r} one: "
            f"use create_model('classifier_head_{contents.config.model}', weights=...)"
        )
    head = ClassifierHead(contents.config)
    head.load_state_dict(contents.tensors)
    return head.eval()


@register_model(
    "classifier_head_logistic", default_config={"num_classes": 2, "features": "raw", "pool": "mean"}
)
def classifier_head_logistic(
    weights: Path | None = None,
    num_classes: int = 2,
    features: str = "raw",
    pool: str = "mean",
    seed: int | None = None,
) -> ClassifierHead:
    """One linear layer on standardised VGGish embeddings (``audioembed train --model logistic``)."""
    return _build(
        "logistic",
        weights,
        num_classes=num_classes,
        features=features,
        pool=pool,
        hidden=1,
        dropout=0.0,
        seed=seed,
    )


@register_model(
    "classifier_head_mlp",
    default_config={"num_classes": 2, "features": "raw", "pool": "mean", "hidden": 256, "dropout": 0.2},
)
def classifier_head_mlp(
    weights: Path | None = None,
    num_classes: int = 2,
    features: str = "raw",
    pool: str = "mean",
    hidden: int = 256,
    dropout: float = 0.2,
    seed: int | None = None,
) -> ClassifierHead:
    """Linear -> ReLU -> dropout -> linear on standardised VGGish embeddings (``--model mlp``)."""
    return _build(
        "mlp",
        weights,
        num_classes=num_classes,
        features=features,
        pool=pool,
        hidden=hidden,
        dropout=dropout,
        seed=seed,
    )
