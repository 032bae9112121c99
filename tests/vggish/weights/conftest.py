"""Fixtures for the weights tests: full-size synthetic files in every format, built once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from http_server import Behaviour, serve
from weights_writers import tensors_from_arrays, write_tf_v1, write_torch_legacy, write_torch_zip

from audioembed.vggish.weights import synthesize_pca, synthesize_weights, write_native
from audioembed.vggish.weights.torch_port import tf_to_port

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "weights"
SEED = 11


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Path:
    """The 403-byte checkpoint TensorFlow 2.21 wrote (docs/weight-formats.md §A.8)."""
    return FIXTURES / "tiny_v1.ckpt"


@pytest.fixture(scope="session")
def synthetic_tensors() -> dict[str, np.ndarray]:
    """Full-size synthetic weights by TF name (288 MB), shared by every test that reads them."""
    return synthesize_weights(SEED)


@pytest.fixture(scope="session")
def synthetic_pca() -> dict[str, np.ndarray]:
    return synthesize_pca(SEED)


class _LazyFiles:
    """Full-size files by format name, each written on first use (288 MB apiece, ~1 s each)."""

    def __init__(self, folder: Path, tensors: dict[str, np.ndarray], pca: dict[str, np.ndarray]) -> None:
        self.folder, self.tensors, self.pca = folder, tensors, pca
        self._paths: dict[str, Path] = {}
        self._port: dict | None = None

    def _port_tensors(self) -> dict:
        if self._port is None:
            self._port = tensors_from_arrays(tf_to_port(self.tensors))
        return self._port

    def _build(self, kind: str) -> Path:
        folder = self.folder
        # Misleading names on purpose: formats are detected from bytes.
        if kind == "tf-checkpoint":
            extras = {
                "global_step": np.array(1234, np.int64),
                "vggish/extra/momentum": np.ones(7, np.float32),
            }
            return write_tf_v1(folder / "vggish_model.ckpt", {**self.tensors, **extras})
        if kind == "torch-legacy":
            return write_torch_legacy(folder / "legacy.bin", self._port_tensors())
        if kind == "torch-zip":
            return write_torch_zip(folder / "zip.pth", self._port_tensors(), folder="vggish")
        if kind == "native":
            metadata = {"source_file": "synthetic", "synthetic": "true"}
            return write_native(folder / "vggish.safetensors", self.tensors, pca=self.pca, metadata=metadata)
        if kind == "npz":
            np.savez(folder / "vggish_pca_params.npz", **self.pca)
            return folder / "vggish_pca_params.npz"
        if kind == "pca-pth":
            return write_torch_legacy(folder / "pca.pth", dict(self.pca))
        raise KeyError(kind)

    def __getitem__(self, kind: str) -> Path:
        if kind not in self._paths:
            self._paths[kind] = self._build(kind)
        return self._paths[kind]


@pytest.fixture(scope="session")
def full_files(tmp_path_factory, synthetic_tensors, synthetic_pca) -> _LazyFiles:
    """The same synthetic weights in every format (and the PCA files), written on first use."""
    return _LazyFiles(tmp_path_factory.mktemp("full_weights"), synthetic_tensors, synthetic_pca)


@pytest.fixture(scope="session")
def served_official(full_files):
    """A server with the synthetic checkpoint and PCA file under the official names."""
    behaviour = Behaviour(
        files={"/vggish_model.ckpt": full_files["tf-checkpoint"], "/vggish_pca_params.npz": full_files["npz"]}
    )
    with serve(behaviour) as base:
        yield base, behaviour


@pytest.fixture(scope="session")
def synthetic_statistics(full_files):
    """Smoke-test statistics of the synthetic weights: what a verification of them must expect."""
    from audioembed.vggish import load_postprocessor, load_vggish
    from audioembed.weights_check import smoke_statistics

    return smoke_statistics(load_vggish(full_files["native"]), load_postprocessor(full_files["native"]))
