"""``audioembed client --classify NAME``: classify files with a served classifier, one JSON line per file.

A line holds the clip-level ``top_k``, every label's clip score, and the per-window scores with their
timestamps (the same fields as ``audioembed classify`` writes to JSONL, plus the classifier's name).
Files too large for one message, or all files with ``--stream``, go through ``EmbedStream``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from audioembed.errors import InvalidOptionError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--classify",
        metavar="NAME",
        default=None,
        help="classify the files with the server's classifier NAME (see --info) instead of embedding them",
    )
    parser.add_argument(
        "--top-k", type=int, default=5, help="with --classify: labels in top_k (default: %(default)s)"
    )


def record(path: Path, classifier: str, result: Any) -> dict[str, Any]:
    """One file's JSON line."""
    return {
        "file": str(path),
        "classifier": classifier,
        "label": result.label,
        "top_k": [{"label": label, "score": score} for label, score in result.top_k],
        "labels": list(result.labels),
        "clip_scores": [float(s) for s in result.clip_scores],
        "timestamps": [float(t) for t in result.timestamps],
        "window_scores": [[float(s) for s in row] for row in result.window_scores],
        "window_seconds": result.window_seconds,
        "duration_seconds": result.duration_seconds,
        "short_clip": result.short_clip,
    }


def classify_one(
    client: Any, args: argparse.Namespace, path: Path, stream: bool, chunk: int
) -> dict[str, Any]:
    """Classify one file (streamed when ``stream``) and return its JSON line.

    Raises
    ------
    ServiceError, OSError
        The server refused it, or the file cannot be read.
    """
    options = {"top_k": args.top_k, "hop_seconds": args.hop, "short_clip": args.short_clip}
    if stream:
        result = client.classify_file_stream(path, args.classify, chunk_bytes=chunk, **options)
    else:
        result = client.classify(path, args.classify, **options)
    return record(path, args.classify, result)


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse combinations that mean nothing with ``--classify``."""
    if args.classify is None:
        return
    if args.output_dir is not None:
        raise InvalidOptionError(
            "--output-dir writes embeddings (.npz); with --classify the results are the JSON lines on stdout"
        )
    if args.top_k < 1:
        raise InvalidOptionError(f"--top-k must be a positive integer, got {args.top_k}")
