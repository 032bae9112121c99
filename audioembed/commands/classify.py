"""``audioembed classify FILES --classifier c.safetensors``: per-window and clip-level class scores."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from audioembed.bulk.atomic import atomic_file
from audioembed.bulk.inputs import expand_inputs
from audioembed.classifier.classifier import ClassificationResult
from audioembed.commands import Command
from audioembed.commands._classifier_args import add_classifier_arguments, classifier_from_args
from audioembed.commands._model_args import _positive_int
from audioembed.errors import InvalidOptionError
from audioembed.pipeline import FailedInput


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="audio files, directories (searched recursively), glob patterns, @list.txt, or - (stdin)",
    )
    add_classifier_arguments(parser)
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="a .jsonl (one object per file) or .csv (one row per window and per clip); default: JSONL "
        "on standard output",
    )
    parser.add_argument(
        "--top-k", type=_positive_int, default=5, help="clip-level labels to list (default: 5)"
    )


def run(args: argparse.Namespace) -> int:
    output: Path | None = args.output
    if output is not None and output.suffix.lower() not in (".jsonl", ".csv"):
        raise InvalidOptionError(f"--output must end in .jsonl or .csv, got {str(output)!r}")
    files = expand_inputs(args.inputs)
    classifier = classifier_from_args(args)
    if classifier.embedder.model_info.synthetic:
        print(
            "warning: SYNTHETIC VGGish weights: scores are a demo, not a real classifier's", file=sys.stderr
        )
    outcomes = classifier.classify_many([file.path for file in files], top_k=args.top_k, errors="return")
    as_csv = output is not None and output.suffix.lower() == ".csv"
    failures = 0
    buffer = io.StringIO()
    writer = _CsvWriter(buffer, classifier.labels) if as_csv else None
    for file, outcome in zip(files, outcomes, strict=True):
        if isinstance(outcome, FailedInput):
            failures += 1
            print(f"audioembed classify: failed {file.path}: {outcome.error}", file=sys.stderr)
            continue
        if writer is not None:
            writer.write(str(file.path), outcome)
        else:
            buffer.write(json.dumps(_record(str(file.path), outcome)) + "\n")
        if output is None:  # streaming to stdout: one line as each file completes
            sys.stdout.write(buffer.getvalue())
            sys.stdout.flush()
            buffer.seek(0)
            buffer.truncate()
    if output is not None:
        with atomic_file(output) as handle:
            handle.write(buffer.getvalue().encode())
    print(f"classified {len(files) - failures} file(s), {failures} failed", file=sys.stderr)
    return 1 if failures else 0


def _record(path: str, result: ClassificationResult) -> dict:
    return {
        "path": path,
        "top_k": [{"label": label, "score": score} for label, score in result.top_k],
        "labels": list(result.labels),
        "clip_scores": [float(s) for s in result.clip_scores],
        "timestamps": [float(t) for t in result.timestamps],
        "window_scores": [[float(s) for s in row] for row in result.window_scores],
        "window_seconds": result.window_seconds,
        "duration_seconds": result.duration_seconds,
        "short_clip": result.short_clip,
    }


class _CsvWriter:
    """One row per window (``kind=window``) and one per clip (``kind=clip``), a score column per label."""

    def __init__(self, stream: TextIO, labels: tuple[str, ...]) -> None:
        self.labels = labels
        self.writer = csv.writer(stream)
        self.writer.writerow(["path", "kind", "start_seconds", "end_seconds", "top_k", *labels])

    def write(self, path: str, result: ClassificationResult) -> None:
        for row in self._rows(path, result):
            self.writer.writerow(row)

    def _rows(self, path: str, result: ClassificationResult) -> Iterator[list]:
        for start, scores in zip(result.timestamps, result.window_scores, strict=True):
            best = self.labels[int(scores.argmax())]
            yield [
                path,
                "window",
                f"{start:.3f}",
                f"{start + result.window_seconds:.3f}",
                best,
                *_scores(scores),
            ]
        top = ";".join(f"{label}:{score:.6g}" for label, score in result.top_k)
        yield [path, "clip", "0.000", f"{result.duration_seconds:.3f}", top, *_scores(result.clip_scores)]


def _scores(values) -> list[str]:
    return [f"{float(v):.6g}" for v in values]


COMMAND = Command(
    name="classify",
    help="classify audio files with a trained classifier: per-window scores and clip-level top-k labels",
    configure=configure,
    run=run,
)
