"""Install Google's official weights: download, convert to one native file, verify, then replace the cache.

The converted file is verified by the reference smoke test (:mod:`audioembed.weights_check`) *before* it
replaces anything in the cache: a failed verification leaves whatever the user had untouched. This sits
beside the pipeline, not in :mod:`audioembed.vggish.weights`, because the smoke test runs the audio
front-end.
"""

from __future__ import annotations

import logging
import os
from os import PathLike
from pathlib import Path

from audioembed.errors import WeightsDownloadError, WeightsVerificationError
from audioembed.vggish import params
from audioembed.vggish.weights.download import download_file, file_name
from audioembed.vggish.weights.files import read_weights
from audioembed.vggish.weights.native import write_native
from audioembed.vggish.weights.resolve import CACHE_FILE_NAME, home_dir
from audioembed.weights_check import REFERENCE_STATISTICS, SmokeStatistics, verify_weights

logger = logging.getLogger(__name__)


def download_official(
    home: str | PathLike[str] | None = None,
    *,
    checkpoint_url: str = params.CHECKPOINT_URL,
    pca_url: str = params.PCA_PARAMS_URL,
    expected: SmokeStatistics | None = None,
    keep_download: bool = False,
    progress: bool | None = None,
) -> Path:
    """Download the official weights and PCA parameters, convert to one native file, verify, install.

    Parameters
    ----------
    home : str or PathLike, optional
        Cache directory; default :func:`~audioembed.vggish.weights.resolve.home_dir`.
    checkpoint_url, pca_url : str
        Where to fetch from (any supported format works, the URLs are injectable for tests/mirrors).
    expected : SmokeStatistics, optional
        Statistics the converted files must reproduce; default
        :data:`~audioembed.weights_check.REFERENCE_STATISTICS`.
    keep_download : bool
        Keep the downloaded checkpoint after a successful install (it is ~277 MB).
    progress : bool, optional
        Progress bars; default only on a terminal.

    Returns
    -------
    Path
        ``<home>/vggish.safetensors``, verified.

    Raises
    ------
    WeightsDownloadError
        Network or HTTP failures.
    WeightsFormatError
        The downloaded files are not VGGish weights / PCA parameters.
    WeightsVerificationError
        The converted files fail the smoke test; nothing the user had is replaced, and the downloads
        are kept for inspection.
    """
    home = Path(home).expanduser() if home is not None else home_dir()
    downloads = home / "downloads"
    checkpoint = download_file(checkpoint_url, downloads / file_name(checkpoint_url), progress=progress)
    pca = download_file(pca_url, downloads / file_name(pca_url), progress=progress)

    weights = read_weights(checkpoint)
    pca_file = read_weights(pca)
    if not weights.has_model:
        raise WeightsDownloadError(f"{checkpoint_url} holds no model weights ({weights.format})")
    if pca_file.pca is None:
        raise WeightsDownloadError(f"{pca_url} holds no PCA parameters ({pca_file.format})")
    metadata = {
        "source_file": checkpoint.name,
        "source_sha256": weights.sha256,
        "source_format": weights.format,
        "source_url": checkpoint_url,
        "pca_source_file": pca.name,
        "pca_source_sha256": pca_file.sha256,
        "synthetic": "false",
    }
    final = home / CACHE_FILE_NAME
    staging = home / f".{CACHE_FILE_NAME}.verifying"
    write_native(staging, weights.tensors, pca=pca_file.pca, metadata=metadata)
    weights.release_tensors()
    try:
        measured = verify_weights(staging, expected=expected or REFERENCE_STATISTICS)
        os.replace(staging, final)
    except WeightsVerificationError as error:
        kept = f"{final} is unchanged" if final.exists() else f"nothing was installed at {final}"
        raise WeightsVerificationError(
            f"{error} {kept}; the downloads stay in {downloads} (`audioembed weights download --force` "
            "fetches them again)."
        ) from error
    finally:
        staging.unlink(missing_ok=True)  # gone already after a successful install
    logger.info("installed %s (%s)", final, measured)
    if not keep_download:
        checkpoint.unlink()
    return final
