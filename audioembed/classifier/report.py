"""An evaluation report: metrics as text and JSON, and the confusion matrix as text and as a PNG plot.

The plot uses matplotlib (the optional ``plot`` extra, also in ``test``): axes, tick labels, a colour bar
and per-cell counts are a real plot's job, and a home-made rasteriser with its own font would be more code
to maintain than the feature is worth. Without matplotlib the text and JSON reports are still written and
the report says how to get the PNG.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from audioembed.bulk.atomic import atomic_file
from audioembed.classifier.metrics import Metrics
from audioembed.errors import InvalidOptionError

PLOT_EXTRA_HINT = 'pip install "audioembed[plot]"'


def format_confusion(confusion: np.ndarray, labels: tuple[str, ...]) -> str:
    """The confusion matrix as an aligned text table (rows: true, columns: predicted)."""
    corner = "true \\ predicted"
    width = max(5, *(len(label) for label in labels), len(str(int(confusion.max(initial=0)))))
    first = max(len(corner), *(len(label) for label in labels))
    lines = [corner.ljust(first) + " " + " ".join(label.rjust(width) for label in labels)]
    for label, row in zip(labels, confusion, strict=True):
        lines.append(label.ljust(first) + " " + " ".join(str(int(n)).rjust(width) for n in row))
    return "\n".join(lines)


def format_metrics(metrics: Metrics) -> str:
    """A human-readable report: headline numbers, the per-class table, the confusion matrix."""
    lines = [
        f"clips:     {metrics.clips}",
        f"accuracy:  {metrics.accuracy:.4f}" + ("  (exact label set)" if metrics.multi_label else ""),
        f"macro-F1:  {metrics.macro_f1:.4f}",
    ]
    if metrics.mean_average_precision is not None:
        lines.append(f"mAP:       {metrics.mean_average_precision:.4f}")
    width = max(5, *(len(label) for label in metrics.labels))
    header = f"{'class'.ljust(width)}  precision  recall      f1  support"
    if metrics.multi_label:
        header += "      AP"
    lines += ["", header]
    for label, m in metrics.per_class.items():
        row = f"{label.ljust(width)}  {m.precision:9.4f}  {m.recall:6.4f}  {m.f1:6.4f}  {m.support:7d}"
        if metrics.multi_label:
            row += "       -" if m.average_precision is None else f"  {m.average_precision:6.4f}"
        lines.append(row)
    lines += [
        "",
        "confusion matrix (rows: true, columns: predicted):",
        format_confusion(metrics.confusion, metrics.labels),
    ]
    return "\n".join(lines) + "\n"


def plot_confusion(metrics: Metrics, path: Path, *, title: str = "Confusion matrix") -> Path:
    """Draw the confusion matrix as a PNG: row-normalised colours, counts in the cells.

    Raises
    ------
    InvalidOptionError
        When matplotlib is not installed (the message says which extra brings it).
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)  # no display: render to a file
        from matplotlib.figure import Figure
    except ImportError as error:
        raise InvalidOptionError(f"the confusion-matrix plot needs matplotlib: {PLOT_EXTRA_HINT}") from error
    confusion = metrics.confusion.astype(np.float64)
    totals = confusion.sum(axis=1, keepdims=True)
    # Colour by the fraction of each true class, so a rare class's errors are as visible as a common one's.
    fractions = np.divide(confusion, totals, out=np.zeros_like(confusion), where=totals > 0)
    count = len(metrics.labels)
    side = min(16.0, 2.5 + 0.55 * count)
    figure = Figure(figsize=(side + 1.5, side), dpi=100)
    axes = figure.add_subplot()
    image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class")
    axes.set_xticks(range(count), labels=metrics.labels, rotation=45, ha="right")
    axes.set_yticks(range(count), labels=metrics.labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    subtitle = f"accuracy {metrics.accuracy:.3f}, macro-F1 {metrics.macro_f1:.3f}"
    if metrics.mean_average_precision is not None:
        subtitle += f", mAP {metrics.mean_average_precision:.3f}"
    axes.set_title(f"{title}\n{subtitle}")
    if count <= 30:  # beyond that the numbers no longer fit their cells
        for row in range(count):
            for column in range(count):
                axes.text(
                    column,
                    row,
                    str(int(confusion[row, column])),
                    ha="center",
                    va="center",
                    color="white" if fractions[row, column] > 0.5 else "black",
                    fontsize=8,
                )
    figure.tight_layout()
    with atomic_file(path) as handle:
        figure.savefig(handle, format="png")
    return path


def write_report(metrics: Metrics, directory: Path, *, context: dict | None = None) -> list[Path]:
    """Write ``report.txt``, ``metrics.json`` and ``confusion_matrix.png`` into ``directory``.

    Returns
    -------
    list of Path
        The files written (without the PNG when matplotlib is missing; ``report.txt`` then says so).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    text = format_metrics(metrics)
    try:
        written.append(plot_confusion(metrics, directory / "confusion_matrix.png"))
    except InvalidOptionError as error:
        text += f"\n(no confusion_matrix.png: {error})\n"
    with atomic_file(directory / "report.txt") as handle:
        handle.write(text.encode())
    written.append(directory / "report.txt")
    payload = {**(context or {}), "metrics": metrics.to_dict()}
    with atomic_file(directory / "metrics.json") as handle:
        handle.write(json.dumps(payload, indent=2).encode())
    written.append(directory / "metrics.json")
    return written
