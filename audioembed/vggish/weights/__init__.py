"""VGGish weights: readers for every published format, the native format, synthesis, download, cache.

Installing Google's official files (download, convert, verify with the smoke test) is
:mod:`audioembed.weights_install`; the check itself is :mod:`audioembed.weights_check`. Both run audio, which
this package knows nothing about.

Every reader returns tensors keyed by their TF checkpoint name in TF layouts (``params.VARIABLES``),
the canonical form the model loads. Formats are detected from a file's bytes, never its name.
"""

from typing import Any

from audioembed.vggish.weights.detect import FORMATS, detect_format
from audioembed.vggish.weights.files import WeightsFile, file_sha256, read_weights
from audioembed.vggish.weights.loaders import build_vggish, load_postprocessor, load_vggish
from audioembed.vggish.weights.native import read_native, write_native
from audioembed.vggish.weights.pca import read_pca_npz
from audioembed.vggish.weights.resolve import cached_weights_path, home_dir, resolve_pca, resolve_weights
from audioembed.vggish.weights.synthetic import synthesize_pca, synthesize_weights
from audioembed.vggish.weights.tf_checkpoint import read_tf_checkpoint
from audioembed.vggish.weights.torch_pickle import read_torch_file

__all__ = [
    "FORMATS",
    "WeightsFile",
    "build_vggish",
    "cached_weights_path",
    "detect_format",
    "download_file",
    "file_sha256",
    "home_dir",
    "load_postprocessor",
    "load_vggish",
    "read_native",
    "read_pca_npz",
    "read_tf_checkpoint",
    "read_torch_file",
    "read_weights",
    "resolve_pca",
    "resolve_weights",
    "synthesize_pca",
    "synthesize_weights",
    "write_native",
]


def __getattr__(name: str) -> Any:
    # The downloader pulls in ssl, urllib and http.client (~7 MiB) that a process serving a local file never
    # needs: imported on first use (PEP 562) instead of with every model load.
    if name == "download_file":
        from audioembed.vggish.weights.download import download_file

        return download_file
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
