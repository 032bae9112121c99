"""``audioembed weights {download,convert,info,synth}``: get, convert, inspect and generate weight files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from audioembed import weights_install
from audioembed.classifier.file import describe_classifier, is_classifier_file
from audioembed.commands import Command
from audioembed.commands._classifier_info import print_classifier_info
from audioembed.errors import WeightsFormatError
from audioembed.vggish import params
from audioembed.vggish.weights import detect, download, resolve, synthetic, tf_checkpoint
from audioembed.vggish.weights.files import WeightsFile, read_weights
from audioembed.vggish.weights.native import write_native


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="weights_action", metavar="ACTION", required=True)

    fetch = actions.add_parser(
        "download",
        help="download Google's official checkpoint and PCA file, convert to the native format, verify",
        description="Fetch vggish_model.ckpt and vggish_pca_params.npz into $AUDIOEMBED_HOME "
        "(default ~/.cache/audioembed), resuming partial downloads, convert them to one native file, "
        "and check it with the reference smoke test before installing it.",
    )
    fetch.add_argument(
        "--home", type=Path, help="cache directory (default: $AUDIOEMBED_HOME or ~/.cache/audioembed)"
    )
    fetch.add_argument(
        "--base-url",
        metavar="URL",
        help="fetch vggish_model.ckpt and vggish_pca_params.npz from this URL prefix instead (a mirror)",
    )
    fetch.add_argument(
        "--force", action="store_true", help="download and install even if the cache has weights"
    )
    fetch.add_argument(
        "--keep-download", action="store_true", help="keep the downloaded checkpoint after converting it"
    )
    fetch.set_defaults(_weights_run=_download)

    convert = actions.add_parser(
        "convert",
        help="convert any supported weights file (and PCA parameters) to the native .safetensors",
    )
    convert.add_argument(
        "source", type=Path, metavar="SRC", help="vggish_model.ckpt, a .pth, or a native file"
    )
    convert.add_argument("--pca", type=Path, metavar="PCA", help="PCA parameters (.npz or .pth) to include")
    convert.add_argument(
        "-o", "--output", type=Path, required=True, metavar="OUT", help="native file to write"
    )
    convert.set_defaults(_weights_run=_convert)

    info = actions.add_parser(
        "info", help="describe a weights or classifier file: format, tensors, sha256, provenance"
    )
    info.add_argument("file", type=Path, metavar="FILE")
    info.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    info.set_defaults(_weights_run=_info)

    synth = actions.add_parser(
        "synth", help="write deterministic synthetic weights and PCA parameters (for demos and tests)"
    )
    synth.add_argument("--seed", type=_seed, required=True, metavar="N", help="non-negative integer seed")
    synth.add_argument(
        "-o", "--output", type=Path, required=True, metavar="FILE", help="native file to write"
    )
    synth.add_argument("--no-pca", action="store_true", help="leave out the synthetic PCA parameters")
    synth.set_defaults(_weights_run=_synth)


def run(args: argparse.Namespace) -> int:
    return int(args._weights_run(args))


def _download(args: argparse.Namespace) -> int:
    home = args.home.expanduser() if args.home is not None else resolve.home_dir()
    installed = home / resolve.CACHE_FILE_NAME
    if installed.is_file() and not args.force:
        print(f"weights already installed: {installed} (use --force to download again)")
        return 0
    checkpoint_url, pca_url = download.official_urls(args.base_url)
    if args.force:  # earlier downloads may be what failed verification: fetch them afresh
        for url in (checkpoint_url, pca_url):
            earlier = home / "downloads" / download.file_name(url)
            for path in (earlier, earlier.with_name(earlier.name + ".part")):
                path.unlink(missing_ok=True)
    print(f"downloading {checkpoint_url}\n        and {pca_url}\n   into {home / 'downloads'}")
    path = weights_install.download_official(
        home, checkpoint_url=checkpoint_url, pca_url=pca_url, keep_download=args.keep_download
    )
    print(f"verified with the reference smoke test; installed {path}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    source = read_weights(args.source)
    if not source.has_model:
        raise WeightsFormatError(f"{args.source} holds only PCA parameters; pass it with --pca")
    metadata = {
        "source_file": source.metadata.get("source_file", args.source.name),
        "source_sha256": source.metadata.get("source_sha256", source.sha256),
        "source_format": source.metadata.get("source_format", source.format),
        "synthetic": "true" if source.synthetic else "false",
    }
    pca = source.pca
    if args.pca is not None:
        pca_file = read_weights(args.pca)
        if pca_file.pca is None:
            raise WeightsFormatError(f"--pca {args.pca} holds no PCA parameters ({pca_file.format})")
        pca = pca_file.pca
        metadata.update(pca_source_file=args.pca.name, pca_source_sha256=pca_file.sha256)
    write_native(args.output, source.tensors, pca=pca, metadata=metadata)
    print(
        f"wrote {args.output}: 18 tensors from {args.source} ({source.format})"
        + (", with PCA parameters" if pca is not None else ", no PCA parameters")
    )
    return 0


def _synth(args: argparse.Namespace) -> int:
    pca = None if args.no_pca else synthetic.synthesize_pca(args.seed)
    metadata = {"source_file": f"synthetic (seed {args.seed})", "synthetic": "true", "seed": str(args.seed)}
    write_native(args.output, synthetic.synthesize_weights(args.seed), pca=pca, metadata=metadata)
    print(f"wrote {args.output}: SYNTHETIC weights (seed {args.seed}){'' if pca is None else ' and PCA'}")
    return 0


def _info(args: argparse.Namespace) -> int:
    if is_classifier_file(args.file):  # a head from `audioembed train`: labels, config, provenance
        print_classifier_info(describe_classifier(args.file), as_json=args.json)
        return 0
    try:
        weights = read_weights(args.file)
    except WeightsFormatError as error:
        if detect.detect_format(args.file) != detect.TF_V1:
            raise
        # A TF checkpoint of something else: still show what it holds, then why it is not VGGish.
        entries = tf_checkpoint.list_tf_checkpoint(args.file)
        description = {
            "file": str(args.file),
            "format": detect.TF_V1,
            "tensors": {e.name: {"dtype": e.dtype, "shape": list(e.shape)} for e in entries},
            "vggish": False,
            "problem": str(error),
        }
        _print_info(description, as_json=args.json)
        return 1
    _print_info(_describe(weights), as_json=args.json)
    return 0


def _describe(weights: WeightsFile) -> dict[str, Any]:
    def shapes(arrays: dict[str, np.ndarray] | None) -> dict[str, Any]:
        return {name: {"dtype": str(a.dtype), "shape": list(a.shape)} for name, a in (arrays or {}).items()}

    ordered = {
        v.tf_name: weights.tensors[v.tf_name] for v in params.VARIABLES if v.tf_name in weights.tensors
    }
    return {
        "file": str(weights.path),
        "format": weights.format,
        "size_bytes": weights.path.stat().st_size,
        "sha256": weights.sha256,
        "synthetic": weights.synthetic,
        "metadata": dict(weights.metadata),
        "tensors": shapes(ordered),
        "parameters": int(sum(a.size for a in ordered.values())),
        "pca": shapes(weights.pca),
        "vggish": weights.has_model,
    }


def _print_info(description: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        json.dump(description, sys.stdout, indent=2)
        print()
        return
    print(f"file:      {description['file']}")
    print(f"format:    {description['format']}")
    if "size_bytes" in description:
        print(f"size:      {description['size_bytes']:,} bytes")
        print(f"sha256:    {description['sha256']}")
    if "synthetic" in description:
        flag = (
            "YES - generated, not trained: embeddings are meaningless" if description["synthetic"] else "no"
        )
        print(f"synthetic: {flag}")
    for key, value in sorted(description.get("metadata", {}).items()):
        print(f"  {key}: {value}")
    tensors = description["tensors"]
    if not tensors:
        print("tensors:   none (a PCA parameter file)")
    else:
        count = f", {description['parameters']:,} parameters" if "parameters" in description else ""
        print(f"tensors:   {len(tensors)}{count}")
    for name, spec in tensors.items():
        print(f"  {name:<34} {spec['dtype']:<8} {spec['shape']}")
    if "pca" in description:
        print("PCA:" if description["pca"] else "PCA:       none")
        for name, spec in description["pca"].items():
            print(f"  {name:<34} {spec['dtype']:<8} {spec['shape']}")
    if "problem" in description:
        print(f"not loadable as VGGish: {description['problem']}")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {text!r}")
    return value


COMMAND = Command(
    name="weights",
    help="download, convert, inspect or synthesize VGGish weight files",
    configure=configure,
    run=run,
)
