"""Where the weights are: an explicit path, an environment variable, the cache, or a download.

The cache is ``$AUDIOEMBED_HOME`` (default ``~/.cache/audioembed``); ``audioembed weights download``
fills it with one native file, ``vggish.safetensors``, holding the weights and the PCA parameters.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from os import PathLike
from pathlib import Path

from audioembed.errors import WeightsDownloadError, WeightsNotFoundError
from audioembed.vggish.weights.detect import detect_format

HOME_ENV = "AUDIOEMBED_HOME"
WEIGHTS_ENV = "AUDIOEMBED_WEIGHTS"
PCA_ENV = "AUDIOEMBED_PCA"
CACHE_FILE_NAME = "vggish.safetensors"  # converted weights + PCA, written by `audioembed weights download`
DOWNLOAD_COMMAND = "audioembed weights download"
SYNTH_COMMAND = "audioembed weights synth --seed 0 -o {path}"  # README's offline alternative

# Fetches and installs weights when none are found, returning the installed file. The pipeline passes
# audioembed.weights_install.download_official (installing verifies with audio, unknown to this package).
Downloader = Callable[[], Path]


def home_dir() -> Path:
    """The cache directory: ``$AUDIOEMBED_HOME`` or ``~/.cache/audioembed`` (not created here)."""
    configured = os.environ.get(HOME_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "audioembed"


def cached_weights_path() -> Path:
    """Where the downloaded, converted and verified weights live (whether or not they exist yet)."""
    return home_dir() / CACHE_FILE_NAME


def resolve_weights(
    explicit: str | PathLike[str] | None = None, *, download: Downloader | None = None
) -> Path:
    """Find the model weights.

    Order: ``explicit``; ``$AUDIOEMBED_WEIGHTS``; the cache; ``download()`` when given (None: never download).

    Returns
    -------
    Path
        An existing file (its format is not checked here).

    Raises
    ------
    WeightsNotFoundError
        An explicit path or the environment variable names a missing file, or nothing was found and
        downloading is not allowed; the message says which command or setting fixes it.
    """
    return _resolve(explicit, WEIGHTS_ENV, "weights", "--weights PATH", download)


def resolve_pca(explicit: str | PathLike[str] | None = None, *, download: Downloader | None = None) -> Path:
    """Find the PCA parameters: ``explicit``; ``$AUDIOEMBED_PCA``; the cache; ``download()`` when given.

    The cached native file holds the PCA parameters too, so the cache answer is the same file as
    :func:`resolve_weights`'.
    """
    return _resolve(explicit, PCA_ENV, "PCA parameters", "--pca PATH", download)


def _resolve(
    explicit: str | PathLike[str] | None, env: str, what: str, flag: str, download: Downloader | None
) -> Path:
    if explicit is not None:
        return _existing(Path(explicit).expanduser(), f"{what} file")
    configured = os.environ.get(env)
    if configured:
        return _existing(Path(configured).expanduser(), f"${env} ({what})")
    cached = cached_weights_path()
    if cached.is_file():
        return cached
    if download is not None:
        try:
            return download()
        except WeightsDownloadError as error:
            # The newcomer's path (`serve --allow-download`) offline: name the way to run without a network.
            raise WeightsDownloadError(
                f"{error}. To run offline, serve synthetic weights instead (outputs are labelled synthetic): "
                f"`{SYNTH_COMMAND.format(path=cached)}`"
            ) from error
    raise WeightsNotFoundError(
        f"no VGGish {what} found: none given, ${env} is not set, and the cache {cached} is empty. "
        f"Run `{DOWNLOAD_COMMAND}` (fetches and converts Google's official files), or pass {flag} / "
        f"set ${env} to a file you have"
    )


def _existing(path: Path, what: str) -> Path:
    if path.is_file():
        return path
    if path.exists() or Path(f"{path}.index").exists():
        detect_format(path)  # raises the precise error: a directory, or a TF V2 checkpoint prefix
    raise WeightsNotFoundError(f"{what} {str(path)!r} does not exist")
