"""``audioembed train DATA -o classifier.safetensors``: train a sound classifier head on VGGish embeddings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from audioembed import __version__, weights_install
from audioembed.classifier.cache import EmbeddingCache, default_cache_dir
from audioembed.classifier.dataset import read_dataset
from audioembed.classifier.file import ClassifierFile, state_tensors, write_classifier
from audioembed.classifier.finetune import FINE_TUNE_MODES, extract_dataset, fine_tune
from audioembed.classifier.heads import FEATURES, MODELS, POOLS, HeadConfig
from audioembed.classifier.report import format_metrics, write_report
from audioembed.classifier.training import CLASS_WEIGHTS, TrainOptions, train_head
from audioembed.classifier.windows import embed_dataset, split_clips
from audioembed.commands import Command
from audioembed.commands._model_args import _positive_int, add_model_arguments, embedder_from_args
from audioembed.errors import InvalidOptionError
from audioembed.vggish.weights import resolve_weights

_DEFAULTS = TrainOptions()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data",
        type=Path,
        metavar="DATA",
        help="a folder with one sub-folder per label, or a CSV / JSONL manifest (path, labels)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="FILE", help="classifier to write"
    )
    head = parser.add_argument_group("head")
    mode = head.add_mutually_exclusive_group()
    mode.add_argument(
        "--head", action="store_true", help="train a head on frozen VGGish embeddings (default)"
    )
    mode.add_argument(
        "--fine-tune",
        choices=FINE_TUNE_MODES,
        help="also train VGGish's dense layers (fc) or all its layers (all), from log-mel examples",
    )
    head.add_argument("--model", choices=MODELS, default="logistic", help="(default: logistic)")
    head.add_argument(
        "--features",
        choices=FEATURES,
        default="raw",
        help="raw float32 embeddings or the PCA/uint8 ones (default: raw)",
    )
    head.add_argument(
        "--pool", choices=POOLS, default="mean", help="window scores -> clip score (default: mean)"
    )
    head.add_argument("--hidden", type=_positive_int, default=256, help="MLP hidden width (default: 256)")
    head.add_argument("--dropout", type=float, default=0.2, help="MLP dropout probability (default: 0.2)")
    head.add_argument(
        "--multi-label",
        action="store_true",
        help="treat the data as multi-label even if every file has one label",
    )
    training = parser.add_argument_group("training")
    validation = training.add_mutually_exclusive_group()
    validation.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        metavar="F",
        help="fraction of each label's files held out for validation (default: 0.2)",
    )
    validation.add_argument("--val", type=Path, metavar="DATA", help="a separate validation set")
    training.add_argument(
        "--epochs", type=_positive_int, default=_DEFAULTS.epochs, help="at most (default: %(default)s)"
    )
    training.add_argument(
        "--patience",
        type=_positive_int,
        default=_DEFAULTS.patience,
        help="epochs without improvement (default: %(default)s)",
    )
    training.add_argument(
        "--train-batch-size",
        type=_positive_int,
        default=_DEFAULTS.batch_size,
        help="windows per step (default: %(default)s)",
    )
    training.add_argument(
        "--lr", type=float, default=_DEFAULTS.learning_rate, help="AdamW learning rate (default: %(default)s)"
    )
    training.add_argument(
        "--weight-decay", type=float, default=_DEFAULTS.weight_decay, help="(default: %(default)s)"
    )
    training.add_argument(
        "--class-weight", choices=CLASS_WEIGHTS, default="balanced", help="(default: balanced)"
    )
    training.add_argument("--label-smoothing", type=float, default=0.0, help="single-label only (default: 0)")
    training.add_argument("--seed", type=_non_negative_int, default=0, help="(default: 0)")
    training.add_argument(
        "--min-files-per-label", type=_positive_int, default=2, help="refuse smaller labels (default: 2)"
    )
    cache = parser.add_argument_group("embedding cache")
    cache.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="reuse embeddings across runs (default: $AUDIOEMBED_HOME/embedding-cache)",
    )
    cache.add_argument("--no-cache", action="store_true", help="embed everything, store nothing")
    parser.add_argument("--report", type=Path, metavar="DIR", help="write the validation report here")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_model_arguments(parser, with_kind=False)


def run(args: argparse.Namespace) -> int:
    config = HeadConfig(
        num_classes=2,  # replaced below once the labels are known; checks the other options early
        model=args.model,
        features=args.features,
        pool=args.pool,
        hidden=args.hidden,
        dropout=args.dropout,
    )
    options = TrainOptions(
        epochs=args.epochs,
        batch_size=args.train_batch_size,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        patience=args.patience,
        class_weight=args.class_weight,
        label_smoothing=args.label_smoothing,
        seed=args.seed,
    )
    dataset = read_dataset(
        args.data,
        multi_label=True if args.multi_label else None,
        min_files_per_label=args.min_files_per_label,
    )
    val_dataset = None
    if args.val is not None:
        val_dataset = read_dataset(args.val, multi_label=dataset.multi_label, labels=dataset.labels)
    config = HeadConfig(**{**config.to_dict(), "num_classes": len(dataset.labels)})
    embedder = embedder_from_args(args)
    if args.features == "quantized" and embedder.model_info.pca_loaded is False:
        raise InvalidOptionError(
            "--features quantized needs PCA parameters (--pca, or a weights file with them)"
        )
    if args.fine_tune and args.features != "raw":
        raise InvalidOptionError("--fine-tune trains on raw embeddings: drop --features quantized")
    cache = EmbeddingCache(None if args.no_cache else (args.cache or default_cache_dir()), embedder)

    clips, skipped = _embed(dataset, cache, args)
    if val_dataset is not None:
        val_clips, more = _embed(val_dataset, cache, args)
        skipped += more
        train_clips = clips
    else:
        train_clips, val_clips = split_clips(clips, args.val_fraction, args.seed)
    with tqdm(total=options.epochs, unit="epoch", disable=args.quiet, file=sys.stderr, desc="train") as bar:

        def on_epoch(record: dict) -> None:
            bar.set_postfix(
                loss=f"{record['loss']:.4f}", val=f"{record['metric']:.4f}", best=f"{record['best']:.4f}"
            )
            bar.update(1)

        vggish_state: dict = {}
        if args.fine_tune:
            weights = resolve_weights(
                args.weights, download=weights_install.download_official if args.download else None
            )
            outcome, vggish_state = fine_tune(
                train_clips,
                val_clips,
                config,
                options,
                weights=weights,
                mode=args.fine_tune,
                on_epoch=on_epoch,
            )
        else:
            outcome = train_head(train_clips, val_clips, config, options, on_epoch=on_epoch)
    info = embedder.model_info
    training = {
        "audioembed_version": __version__,
        "mode": f"fine-tune {args.fine_tune}" if args.fine_tune else "head",
        "options": options.to_dict(),
        "data": str(args.data),
        "validation": str(args.val) if args.val is not None else f"{args.val_fraction} of DATA per label",
        "train_clips": train_clips.num_clips,
        "train_windows": int(train_clips.features.shape[0]),
        "val_clips": val_clips.num_clips,
        "skipped_files": skipped,
        "best_epoch": outcome.best_epoch,
        "epochs_run": outcome.epochs_run,
        "val_accuracy": outcome.validation.accuracy,
        "val_macro_f1": outcome.validation.macro_f1,
        "val_map": outcome.validation.mean_average_precision,
        "embedding": {
            "hop_seconds": embedder.options.hop_seconds,
            "short_clip": embedder.options.short_clip,
            "resampler": embedder.options.resampler,
        },
    }
    write_classifier(
        args.output,
        ClassifierFile(
            tensors=state_tensors(outcome.head.state_dict()),
            vggish_tensors=vggish_state,
            labels=dataset.labels,
            multi_label=dataset.multi_label,
            config=config,
            vggish_sha256=info.weights_sha256,
            vggish_synthetic=info.synthetic,
            pca_sha256=info.pca_sha256,
            training=training,
        ),
    )
    if not args.quiet:
        print(format_metrics(outcome.validation), file=sys.stderr)
    if args.report is not None:
        write_report(
            outcome.validation, args.report, context={"classifier": str(args.output), "set": "validation"}
        )
    headline = "mAP" if dataset.multi_label else "macro-F1"
    print(
        f"wrote {args.output}: {config.model} head, {len(dataset.labels)} labels, "
        f"{train_clips.num_clips} training / {val_clips.num_clips} validation clips, best epoch "
        f"{outcome.best_epoch} of {outcome.epochs_run}: "
        f"validation accuracy {outcome.validation.accuracy:.3f}, "
        f"{headline} {outcome.validation.headline():.3f}"
        + (f"; {skipped} unreadable file(s) skipped" if skipped else "")
        + (" [SYNTHETIC VGGish weights]" if info.synthetic else "")
    )
    return 0


def _embed(dataset, cache: EmbeddingCache, args: argparse.Namespace):
    """Embed a data set (only its log-mel examples when fine-tuning); report unreadable files.

    Returns (clips, number of files skipped).
    """
    with tqdm(
        total=len(dataset.items), unit="file", disable=args.quiet, file=sys.stderr, desc="embed"
    ) as bar:
        if args.fine_tune:
            clips, failed = extract_dataset(dataset, cache.embedder, on_progress=bar.update)
            hits, embedded = 0, clips.num_clips
        else:
            clips, stats = embed_dataset(dataset, cache, features=args.features, on_progress=bar.update)
            failed, hits, embedded = stats.failed, stats.hits, stats.embedded
    for failure in failed:
        print(f"audioembed train: skipped {failure.source}: {failure.error}", file=sys.stderr)
    if not args.quiet:
        print(
            f"{dataset.source}: {hits} file(s) from the cache, {embedded} embedded, {len(failed)} skipped",
            file=sys.stderr,
        )
    return clips, len(failed)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


COMMAND = Command(
    name="train",
    help="train a sound classifier on VGGish embeddings of labelled audio",
    configure=configure,
    run=run,
)
