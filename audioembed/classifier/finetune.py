"""Fine-tuning: train VGGish's dense layers (``fc``) or all its layers (``all``) together with the head.

The reference's ``vggish_train_demo.py`` trains the network from log-mel examples; this does the same on a
labelled data set: each 0.96 s example is run through VGGish (a ``Tensor``, so the trainable layers are
recorded; with the conv stack frozen it runs as the fused inference engine), standardised with statistics
taken from the untrained model's embeddings, and classified by the head. VGGish's layers learn at a tenth of
the head's rate: they start from useful weights, the head from random ones. The classifier file then also
holds the trained VGGish layers, and classifying runs its own copy of VGGish with them.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable

import numpy as np

from audioembed import nn
from audioembed.classifier.dataset import Dataset
from audioembed.classifier.evaluation import pool_by_clip
from audioembed.classifier.heads import ClassifierHead, HeadConfig, scores_from_logits
from audioembed.classifier.metrics import multi_label_metrics, single_label_metrics
from audioembed.classifier.training import TrainOptions, TrainOutcome, _loss, class_weights
from audioembed.classifier.windows import Clips
from audioembed.errors import AudioEmbedError, DatasetError, InvalidOptionError
from audioembed.nn.optim import AdamW
from audioembed.pipeline import Embedder, FailedInput, describe_source
from audioembed.vggish import VGGish, load_vggish

FINE_TUNE_MODES = ("fc", "all")
DENSE_LAYERS = ("fc1_1", "fc1_2", "fc2")
BACKBONE_LR_SCALE = 0.1  # VGGish's layers move ten times slower than the head's
_EVAL_BATCH = 64  # examples per no-grad forward pass during validation


def extract_dataset(
    dataset: Dataset, embedder: Embedder, *, on_progress: Callable[[int], None] | None = None
) -> tuple[Clips, list[FailedInput]]:
    """Log-mel examples of every readable file: ``Clips`` whose features are float32 ``[W, 96, 64]``.

    Unreadable files are left out and returned as failures (their reason in the error).
    """
    examples, clip_ids, kept, failed = [], [], [], []
    for index, item in enumerate(dataset.items):
        try:
            extracted = embedder.extract(item.path)
        except AudioEmbedError as error:
            failed.append(FailedInput(index=index, source=describe_source(item.path), error=error))
        else:
            if extracted.log_mel.shape[0]:
                clip_ids.append(np.full(extracted.log_mel.shape[0], len(kept), np.int64))
                examples.append(extracted.log_mel.astype(np.float32))
                kept.append(item)
        if on_progress is not None:
            on_progress(1)
    if not kept:
        raise DatasetError(f"none of the {len(dataset.items)} files of {dataset.source!r} could be read")
    index_of = {label: i for i, label in enumerate(dataset.labels)}
    if dataset.multi_label:
        targets = np.zeros((len(kept), len(dataset.labels)), np.float32)
        for row, item in enumerate(kept):
            targets[row, [index_of[label] for label in item.labels]] = 1.0
    else:
        targets = np.array([index_of[item.labels[0]] for item in kept], np.int64)
    clips = Clips(
        features=np.concatenate(examples, axis=0),
        clip_of_window=np.concatenate(clip_ids),
        targets=targets,
        paths=tuple(str(item.path) for item in kept),
        labels=dataset.labels,
        multi_label=dataset.multi_label,
    )
    return clips, failed


def trainable_vggish(weights: str | os.PathLike, mode: str) -> VGGish:
    """VGGish from ``weights`` with the layers ``mode`` trains unfrozen (the others frozen)."""
    if mode not in FINE_TUNE_MODES:
        raise InvalidOptionError(f"fine-tune mode must be one of {FINE_TUNE_MODES}, got {mode!r}")
    model = load_vggish(weights)  # memory-mapped: the optimiser copies a parameter on its first update
    model.requires_grad_(mode == "all")
    if mode == "fc":
        for name in DENSE_LAYERS:
            getattr(model, name).requires_grad_(True)
    return model.train()


def trained_state(model: VGGish, mode: str) -> dict[str, np.ndarray]:
    """The parameters ``mode`` trains, by state-dict key, as float32 copies."""
    names = DENSE_LAYERS if mode == "fc" else None
    return {
        key: np.array(value, dtype=np.float32)
        for key, value in model.state_dict().items()
        if names is None or key.split(".")[0] in names
    }


def _embed(model: VGGish, log_mel: np.ndarray) -> np.ndarray:
    """Raw embeddings ``[N, 128]`` in eval mode, without a graph (the fused engine)."""
    model.eval()
    parts = [model(log_mel[start : start + _EVAL_BATCH]) for start in range(0, log_mel.shape[0], _EVAL_BATCH)]
    return np.concatenate(parts, axis=0) if parts else np.zeros((0, 128), np.float32)


def _evaluate(model: VGGish, head: ClassifierHead, val: Clips):
    head.eval()
    scores = scores_from_logits(
        head(head.normalize(_embed(model, val.features))), multi_label=val.multi_label
    )
    clip = pool_by_clip(scores, val.clip_of_window, val.num_clips, head.config.pool)
    if val.multi_label:
        return multi_label_metrics(val.targets, clip, val.labels)
    return single_label_metrics(val.targets, clip, val.labels)


def fine_tune(
    train: Clips,
    val: Clips,
    config: HeadConfig,
    options: TrainOptions,
    *,
    weights: str | os.PathLike,
    mode: str,
    on_epoch: Callable[[dict], None] | None = None,
) -> tuple[TrainOutcome, dict[str, np.ndarray]]:
    """Train VGGish's ``mode`` layers and a head on log-mel examples; keep the best validation epoch.

    Parameters
    ----------
    train, val : Clips
        From :func:`extract_dataset`: features are log-mel examples ``[W, 96, 64]``.
    config : HeadConfig
        Must take raw features (fine-tuning changes the embeddings the PCA was fitted on).
    options : TrainOptions
    weights : path
        The VGGish weights to start from.
    mode : {"fc", "all"}

    Returns
    -------
    outcome : TrainOutcome
        The head (best epoch, eval mode) and the training history.
    vggish_state : dict of str to np.ndarray
        The trained VGGish parameters of the best epoch, by state-dict key.
    """
    if config.features != "raw":
        raise InvalidOptionError("fine-tuning trains on raw embeddings: use --features raw")
    rng = np.random.default_rng(options.seed)
    model = trainable_vggish(weights, mode)
    head = ClassifierHead(config, rng=rng)
    head.fit_normalization(_embed(model, train.features))  # statistics of the starting embeddings
    mean, scale = head.feature_mean, head.feature_scale
    targets = train.window_targets()
    loss_weights = class_weights(train) if options.class_weight == "balanced" else None
    backbone = [p for p in model.parameters() if p.requires_grad]
    optimizer = AdamW(
        [
            {"params": backbone, "lr": options.learning_rate * BACKBONE_LR_SCALE},
            {"params": list(head.parameters())},
        ],
        lr=options.learning_rate,
        weight_decay=options.weight_decay,
    )
    best = (-np.inf, None, None, 0, None)  # metric, head state, vggish state, epoch, metrics
    history: list[dict] = []
    epoch = 0
    for epoch in range(1, options.epochs + 1):
        model.train()
        head.train()
        order = rng.permutation(train.features.shape[0])
        total = 0.0
        for start in range(0, order.size, options.batch_size):
            batch = order[start : start + options.batch_size]
            embeddings = model(nn.Tensor(train.features[batch]))
            logits = head((embeddings - mean) * scale)
            loss = _loss(
                logits,
                targets[batch],
                multi_label=train.multi_label,
                weights=loss_weights,
                smoothing=options.label_smoothing,
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.item()) * batch.size
        metrics = _evaluate(model, head, val)
        if metrics.headline() > best[0]:
            best = (
                metrics.headline(),
                copy.deepcopy(head.state_dict()),
                trained_state(model, mode),
                epoch,
                metrics,
            )
        record = {"epoch": epoch, "loss": total / order.size, "metric": metrics.headline(), "best": best[0]}
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if epoch - best[3] >= options.patience:
            break
    _, head_state, vggish_state, best_epoch, best_metrics = best
    head.load_state_dict(head_state)
    head.eval()
    outcome = TrainOutcome(
        head=head, best_epoch=best_epoch, epochs_run=epoch, validation=best_metrics, history=history
    )
    return outcome, vggish_state
