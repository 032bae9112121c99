"""``audioembed embed``: embed files, folders, globs and lists of files into .npz, .jsonl or .tfrecord."""

from __future__ import annotations

import argparse
import sys

from audioembed.bulk.inputs import expand_inputs
from audioembed.bulk.outputs import open_writer
from audioembed.bulk.runner import UNIT_FILES, RunSummary, run_bulk
from audioembed.commands import Command
from audioembed.commands._model_args import _positive_int, add_model_arguments, embedder_from_args
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
        help="a directory (one .npz per input, mirroring the input tree), a .jsonl file, a .tfrecord file "
        "(AudioSet SequenceExample layout), or a NAME.parquet directory of Parquet files",
    )
    parser.add_argument(
        "--parquet-rows",
        choices=("per-input", "per-window"),
        default="per-input",
        help="Parquet output: one row per input (lists of windows) or one row per window "
        "(default: per-input)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs instead of skipping"
    )
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first file that fails")
    parser.add_argument("-q", "--quiet", action="store_true", help="report only failures")
    parser.add_argument(
        "--unit-files",
        type=_positive_int,
        default=UNIT_FILES,
        metavar="N",
        help=f"inputs per work unit; model batches never span two units, so both engines compute the same "
        f"batches and outputs are equal bit for bit (default: {UNIT_FILES})",
    )
    add_model_arguments(parser)
    engine = parser.add_argument_group("engine")
    engine.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help='embed in this process, or on a Ray cluster (pip install "audioembed[ray]")',
    )
    engine.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster to join (what 'ray start --head' prints, or 'auto'); default: a local one for "
        "this run",
    )
    engine.add_argument(
        "--actors",
        type=_positive_int,
        metavar="N",
        help="Ray actors, each with one model (default: the cluster's CPUs / --actor-cpus)",
    )
    engine.add_argument(
        "--actor-cpus",
        type=_positive_int,
        default=1,
        metavar="N",
        help="CPUs Ray reserves per actor (default: 1); the model uses the CPUs its process may run on, so "
        "on many-core nodes give each actor several",
    )
    engine.add_argument(
        "--ray-weights",
        choices=("path", "object-store"),
        default="path",
        help="how actors get the weights: map the file at its path (every node must have it), or fetch it "
        "once from Ray's object store (default: path)",
    )


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
        args.output,
        overwrite=args.overwrite,
        needs_quantized=args.kind != "raw",
        provenance=provenance,
        parquet_rows=args.parquet_rows,
    )
    if args.output.lower().endswith(".tfrecord") and not embedder.model_info.pca_loaded:
        writer.abort()
        raise WeightsNotFoundError(
            "a .tfrecord output holds quantized embeddings, which need PCA parameters: pass --pca PATH "
            "(vggish_pca_params.npz) or run 'audioembed weights download'"
        )
    if args.engine == "ray":
        summary = _run_on_ray(args, files, writer, pca_loaded=info.pca_loaded)
    else:
        summary = run_bulk(
            files, writer, embedder, fail_fast=args.fail_fast, quiet=args.quiet, unit_files=args.unit_files
        )
    if not args.quiet or summary.failures:
        print(summary.describe(), file=sys.stderr)
        if info.synthetic:
            print(SYNTHETIC_WARNING, file=sys.stderr)
    return 1 if summary.failures else 0


def _run_on_ray(args: argparse.Namespace, files, writer, *, pca_loaded: bool) -> RunSummary:
    from audioembed.ray.dataset import model_spec  # imports Ray only when asked for
    from audioembed.ray.engine import run_ray_bulk

    try:
        spec = model_spec(
            args.weights,
            args.pca,
            output=args.kind,
            hop_seconds=args.hop,
            short_clip=args.short_clip,
            resampler=args.resampler,
            batch_size=args.batch_size,
            allow_download=args.download,
        )
        return run_ray_bulk(
            files,
            writer,
            spec,
            pca_loaded=pca_loaded,
            address=args.ray_address,
            actors=args.actors,
            cpus_per_actor=args.actor_cpus,
            unit_files=args.unit_files,
            weights_via=args.ray_weights,
            ordered=args.output.lower().endswith((".jsonl", ".tfrecord")),
            fail_fast=args.fail_fast,
            quiet=args.quiet,
        )
    except BaseException:
        writer.abort()  # e.g. Ray missing: leave no partial single-file output behind
        raise


COMMAND = Command(
    name="embed",
    help="embed audio files into .npz, .jsonl, .tfrecord or Parquet, here or on a Ray cluster",
    configure=configure,
    run=run,
)
