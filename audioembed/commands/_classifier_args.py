"""Flags shared by the commands that apply a trained classifier (``evaluate``, ``classify``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from audioembed.classifier.classifier import Classifier, embedding_options
from audioembed.classifier.file import read_classifier
from audioembed.commands._model_args import _positive_int
from audioembed.pipeline import Embedder


def add_classifier_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--classifier`` and the flags that choose the VGGish weights under it."""
    parser.add_argument(
        "--classifier", type=Path, required=True, metavar="FILE", help="a file written by `audioembed train`"
    )
    group = parser.add_argument_group("model")
    group.add_argument(
        "--weights",
        metavar="PATH",
        help="the VGGish weights the classifier was trained on (checked by sha256); default "
        "$AUDIOEMBED_WEIGHTS, then the cache in $AUDIOEMBED_HOME",
    )
    group.add_argument("--pca", metavar="PATH", help="PCA parameters, for a head on quantized embeddings")
    group.add_argument(
        "--download", action="store_true", help="download the official weights into the cache if none"
    )
    group.add_argument("--batch-size", type=_positive_int, default=64, help="examples per model call")


def classifier_from_args(args: argparse.Namespace) -> Classifier:
    """Load the classifier on an Embedder with the front-end options it was trained with."""
    contents = read_classifier(args.classifier)
    embedder = Embedder(
        args.weights,
        args.pca,
        allow_download=args.download,
        batch_size=args.batch_size,
        **embedding_options(contents.training),
    )
    return Classifier(contents, embedder, source=str(args.classifier))
