"""``audioembed embed``: embed files, folders, globs and lists of files into .npz, .jsonl or .tfrecord."""

from __future__ import annotations

import argparse
import sys

from audioembed.bulk.inputs import expand_inputs
from audioembed.bulk.outputs import open_writer
from audioembed.bulk.runner import run_bulk
from audioembed.commands import Command
from audioembed.commands._model_args import add_model_arguments, embedder_from_args
from audioembed.errors import WeightsNotFoundError

SYNTHETIC_WARNING = (
    "warning: these weights are SYNTHETIC (audioembed weights synth): the outputs are not AudioSet "
    "embeddings; every output records synthetic=true"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="audio files, directories (searched recursively), glob patterns, @list.txt, or - (read paths "
        "from stdin)",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="DEST",
        help="a directory (one .npz per input, mirroring the input tree), a .jsonl file, or a .tfrecord file "
        "(AudioSet SequenceExample layout)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs instead of skipping"
    )
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first file that fails")
    parser.add_argument("-q", "--quiet", action="store_true", help="report only failures")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    files = expand_inputs(args.inputs)
    embedder = embedder_from_args(args)
    info = embedder.model_info
    # Stored with every output; resume only skips an output made with exactly these weights and options.
    provenance = {
        "weights_sha256": info.weights_sha256,
        "weights_source": info.weights_source,
        "synthetic": "true" if info.synthetic else "false",
        "option_kind": args.kind,  # prefixed: the result's own hop_seconds / short_clip say what applied
        "option_hop_seconds": f"{args.hop:g}",
        "option_short_clip": args.short_clip,
        "option_resampler": args.resampler,
    }
    if info.synthetic:
        print(SYNTHETIC_WARNING, file=sys.stderr)
    writer = open_writer(
        args.output, overwrite=args.overwrite, needs_quantized=args.kind != "raw", provenance=provenance
    )
    if args.output.lower().endswith(".tfrecord") and not embedder.model_info.pca_loaded:
        writer.abort()
        raise WeightsNotFoundError(
            "a .tfrecord output holds quantized embeddings, which need PCA parameters: pass --pca PATH "
            "(vggish_pca_params.npz) or run 'audioembed weights download'"
        )
    summary = run_bulk(files, writer, embedder, fail_fast=args.fail_fast, quiet=args.quiet)
    if not args.quiet or summary.failures:
        print(summary.describe(), file=sys.stderr)
        if info.synthetic:
            print(SYNTHETIC_WARNING, file=sys.stderr)
    return 1 if summary.failures else 0


COMMAND = Command(
    name="embed", help="embed audio files into .npz, .jsonl or .tfrecord", configure=configure, run=run
)
