"""``audioembed evaluate DATA --classifier FILE``: metrics of a trained classifier on labelled data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from audioembed.classifier.cache import EmbeddingCache, default_cache_dir
from audioembed.classifier.dataset import read_dataset
from audioembed.classifier.evaluation import evaluate_clips
from audioembed.classifier.report import format_metrics, write_report
from audioembed.classifier.windows import embed_dataset
from audioembed.commands import Command
from audioembed.commands._classifier_args import add_classifier_arguments, classifier_from_args


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data", type=Path, metavar="DATA", help="held-out labelled audio: a folder per label, or a manifest"
    )
    add_classifier_arguments(parser)
    parser.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="write report.txt, metrics.json and confusion_matrix.png here",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="multi-label: a class is predicted when its clip score reaches this (default: 0.5)",
    )
    parser.add_argument("--cache", type=Path, metavar="DIR", help="embedding cache (default: as train)")
    parser.add_argument("--no-cache", action="store_true", help="embed everything, store nothing")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    classifier = classifier_from_args(args)
    dataset = read_dataset(args.data, multi_label=classifier.multi_label, labels=classifier.labels)
    cache = EmbeddingCache(
        None if args.no_cache else (args.cache or default_cache_dir()), classifier.embedder
    )
    with tqdm(
        total=len(dataset.items), unit="file", disable=args.quiet, file=sys.stderr, desc="embed"
    ) as bar:
        clips, stats = embed_dataset(
            dataset, cache, features=classifier.config.features, on_progress=bar.update
        )
    for failure in stats.failed:
        print(f"audioembed evaluate: skipped {failure.source}: {failure.error}", file=sys.stderr)
    metrics = evaluate_clips(
        classifier.head, clips, multi_label=classifier.multi_label, threshold=args.threshold
    )
    print(format_metrics(metrics), end="")
    if args.report is not None:
        context = {
            "classifier": str(args.classifier),
            "data": str(args.data),
            "skipped_files": [failure.source for failure in stats.failed],
            "vggish_sha256": classifier.vggish_sha256,
            "synthetic_weights": classifier.embedder.model_info.synthetic,
        }
        written = write_report(metrics, args.report, context=context)
        print(f"report: {', '.join(str(path) for path in written)}", file=sys.stderr)
    return 1 if stats.failed else 0


COMMAND = Command(
    name="evaluate",
    help="measure a trained classifier on held-out labelled audio (accuracy, F1, mAP, confusion matrix)",
    configure=configure,
    run=run,
)
