"""How ``audioembed weights info`` prints a classifier file."""

from __future__ import annotations

import json
import sys
from typing import Any


def np_prod(shape: list[int]) -> int:
    """The number of elements of a tensor of ``shape``."""
    count = 1
    for size in shape:
        count *= size
    return count


def print_classifier_info(description: dict[str, Any], *, as_json: bool) -> None:
    """Print what :func:`~audioembed.classifier.file.describe_classifier` returned, as text or JSON."""
    if as_json:
        json.dump(description, sys.stdout, indent=2)
        print()
        return
    config = description["config"]
    training = description["training"]
    print(f"file:        {description['file']}")
    print(f"format:      {description['format']} (a sound classifier head)")
    print(f"size:        {description['size_bytes']:,} bytes")
    print(f"labels:      {len(description['labels'])}: {', '.join(description['labels'])}")
    print(f"multi-label: {'yes (sigmoid per label)' if description['multi_label'] else 'no (softmax)'}")
    print("head:        " + ", ".join(f"{key}={value}" for key, value in sorted(config.items())))
    synthetic = " (SYNTHETIC weights)" if description["vggish_synthetic"] else ""
    print(f"VGGish:      sha256 {description['vggish_sha256']}{synthetic}")
    if description["pca_sha256"]:
        print(f"PCA:         sha256 {description['pca_sha256']}")
    print(f"tensors:     {len(description['tensors'])}, {description['parameters']:,} parameters")
    for name, spec in description["tensors"].items():
        print(f"  {name:<34} {spec['dtype']:<8} {spec['shape']}")
    tuned = description.get("fine_tuned_vggish") or {}
    if tuned:
        count = sum(int(np_prod(spec["shape"])) for spec in tuned.values())
        print(
            f"fine-tuned VGGish tensors: {len(tuned)}, {count:,} parameters (classifying runs its own VGGish)"
        )
        for name, spec in tuned.items():
            print(f"  vggish.{name:<27} {spec['dtype']:<8} {spec['shape']}")
    print("training:")
    for key, value in sorted(training.items()):
        shown = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value
        print(f"  {key}: {shown}")
