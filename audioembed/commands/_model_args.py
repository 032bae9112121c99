"""Command-line flags shared by every command that loads the model, and the Embedder they describe."""

from __future__ import annotations

import argparse

from audioembed.options import RESAMPLER_METHODS, SHORT_CLIP_POLICIES, check_hop_seconds
from audioembed.pipeline import Embedder
from audioembed.result import OUTPUT_KINDS


def add_model_arguments(parser: argparse.ArgumentParser, *, with_kind: bool = True) -> None:
    """Add ``--weights``, ``--pca``, ``--download``, the embedding options, and ``--kind`` if asked."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--weights",
        metavar="PATH",
        help="weights in any supported format (.safetensors, vggish_model.ckpt, .pth); "
        "default $AUDIOEMBED_WEIGHTS, then the cache in $AUDIOEMBED_HOME",
    )
    group.add_argument(
        "--pca",
        metavar="PATH",
        help="PCA parameters (vggish_pca_params.npz or .pth); default: inside the weights file, "
        "$AUDIOEMBED_PCA, then the cache",
    )
    group.add_argument(
        "--download",
        action="store_true",
        help="download the official weights into the cache if none are found",
    )
    options = parser.add_argument_group("embedding options")
    if with_kind:
        options.add_argument(
            "--kind", choices=OUTPUT_KINDS, default="both", help="matrices to output (default: both)"
        )
    options.add_argument(
        "--hop", type=_hop, default=0.96, metavar="SECONDS", help="hop between examples (default: 0.96)"
    )
    options.add_argument(
        "--short-clip",
        choices=SHORT_CLIP_POLICIES,
        default="pad",
        help="clips under 0.975 s: zero-pad to one example, or drop as the reference does (default: pad)",
    )
    options.add_argument(
        "--resampler", choices=RESAMPLER_METHODS, default="reference", help="(default: reference)"
    )
    options.add_argument("--batch-size", type=_positive_int, default=64, help="examples per model call")


def embedder_from_args(args: argparse.Namespace) -> Embedder:
    """Build the Embedder the flags of :func:`add_model_arguments` describe."""
    return Embedder(
        args.weights,
        args.pca,
        output=getattr(args, "kind", "both"),
        hop_seconds=args.hop,
        short_clip=args.short_clip,
        resampler=args.resampler,
        batch_size=args.batch_size,
        allow_download=args.download,
    )


def _hop(text: str) -> float:
    try:
        return check_hop_seconds(float(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from error
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value
