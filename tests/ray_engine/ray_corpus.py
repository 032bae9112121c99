"""A small mixed corpus for the Ray engine's tests: rates, channels, containers, lengths, one broken file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audioembed import cli
from tests.audio_files import write_tone

# (relative path, seconds, rate, channels): 15 examples in all, so units of 4 files cut model batches of 8.
CLIPS = (
    ("a.wav", 2.0, 16000, 1),
    ("b.flac", 3.5, 44100, 2),
    ("c.wav", 0.5, 8000, 1),
    ("d.wav", 1.2, 22050, 1),
    ("sub/e.flac", 4.0, 48000, 1),
    ("sub/f.wav", 0.9, 16000, 2),
    ("sub/g.wav", 2.5, 32000, 1),
    ("sub/h.flac", 1.0, 16000, 1),
    ("sub/i.wav", 3.0, 16000, 1),
)
BROKEN = "0-broken.wav"  # sorts first: its failure must not shift anything after it


def make_corpus(root: Path, *, broken: bool = True) -> Path:
    """Write the corpus under ``root`` and return ``root``."""
    for index, (name, seconds, rate, channels) in enumerate(CLIPS):
        write_tone(root / name, seconds=seconds, rate=rate, channels=channels, frequency=200.0 + 90 * index)
    if broken:
        (root / BROKEN).write_bytes(b"RIFF garbage, not a WAV file")
    return root


def embed(*args: str) -> int:
    """``audioembed embed ARGS`` in this process (so it joins the test's Ray cluster)."""
    return cli.main(["embed", *args])


def npz_tree(root: Path) -> dict[str, dict[str, np.ndarray]]:
    """Every ``.npz`` below ``root``: relative name -> arrays."""
    tree = {}
    for path in sorted(root.rglob("*.npz")):
        with np.load(path) as stored:
            tree[path.relative_to(root).as_posix()] = {key: stored[key] for key in stored.files}
    return tree


def assert_same_npz_trees(left: Path, right: Path) -> None:
    """Both trees hold the same files with bit-identical arrays (dtype and shape included)."""
    a, b = npz_tree(left), npz_tree(right)
    assert sorted(a) == sorted(b) and a
    for name in a:
        assert sorted(a[name]) == sorted(b[name]), name
        for key in a[name]:
            assert a[name][key].dtype == b[name][key].dtype, (name, key)
            np.testing.assert_array_equal(a[name][key], b[name][key], err_msg=f"{name}:{key}")
