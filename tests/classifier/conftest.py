"""Fixtures for the transfer-learning tests: a small generated sound data set and a random head on it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from audioembed import Embedder
from audioembed.classifier import ClassifierFile, ClassifierHead, HeadConfig, write_classifier
from audioembed.classifier.file import state_tensors

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_demo_script():
    """``scripts/make_demo_dataset.py`` as a module (scripts/ is not a package)."""
    name = "make_demo_dataset"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / "make_demo_dataset.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def make_sounds(root: Path, *, per_class: int, seed: int, seconds: float = 2.0) -> Path:
    """The demo script's non-speech classes (tone, chirp, clicks, noise_burst): a folder per label."""
    load_demo_script().make_dataset(root, per_class=per_class, seconds=seconds, seed=seed, speech=False)
    (root / "manifest.csv").unlink()  # a folder data set: sub-folders only
    return root


@pytest.fixture(scope="session")
def sounds(tmp_path_factory) -> Path:
    """Four non-speech classes, 20 clips of 2 s each (2 windows per clip)."""
    return make_sounds(tmp_path_factory.mktemp("sounds"), per_class=20, seed=1)


@pytest.fixture(scope="session")
def heldout_sounds(tmp_path_factory) -> Path:
    """Held-out clips of the same classes, from another seed."""
    return make_sounds(tmp_path_factory.mktemp("heldout"), per_class=10, seed=2)


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory) -> Path:
    """One embedding cache for every training test, so each data set is embedded once per session."""
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture(scope="session")
def random_classifier(tmp_path_factory, embedder: Embedder) -> Path:
    """An untrained (random) MLP head for the shared Embedder's weights: for API behaviour, not accuracy."""
    head = ClassifierHead(HeadConfig(4, model="mlp", hidden=16), rng=np.random.default_rng(0))
    info = embedder.model_info
    contents = ClassifierFile(
        tensors=state_tensors(head.state_dict()),
        labels=("chirp", "clicks", "noise_burst", "tone"),
        multi_label=False,
        config=head.config,
        vggish_sha256=info.weights_sha256,
        vggish_synthetic=info.synthetic,
        pca_sha256=info.pca_sha256,
        training={"seed": 0},
    )
    return write_classifier(tmp_path_factory.mktemp("clf") / "random.safetensors", contents)
