"""Fetch files over HTTP(S) atomically, resuming partial downloads; the official files' URLs.

Downloads go to ``$AUDIOEMBED_HOME/downloads/<name>.part`` and are renamed into place only when
complete, so an interrupted download never looks finished; running again resumes it with an HTTP
``Range`` request. Converting, verifying and installing the official files is
:func:`audioembed.weights_install.download_official`: verifying runs audio through the model, and this
package knows no audio.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import urllib.error
import urllib.request
from http.client import HTTPException
from os import PathLike
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

from audioembed._version import __version__
from audioembed.errors import WeightsDownloadError
from audioembed.vggish import params

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20  # read size while streaming a download
TIMEOUT_SECONDS = 60.0  # per socket operation, not for the whole file
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)|bytes \*/(\d+)")


def download_file(
    url: str,
    destination: str | PathLike[str],
    *,
    timeout: float = TIMEOUT_SECONDS,
    progress: bool | None = None,
) -> Path:
    """Download ``url`` to ``destination`` atomically, resuming a previous partial download.

    Parameters
    ----------
    url : str
        ``https://`` (or ``http://`` for local test servers).
    destination : str or PathLike
        Final path. If it exists the download is considered done and skipped.
    timeout : float
        Seconds to wait on each socket operation.
    progress : bool, optional
        Show a progress bar; default: only when stderr is a terminal.

    Returns
    -------
    Path
        ``destination``, complete.

    Raises
    ------
    WeightsDownloadError
        Unreachable host (offline), an HTTP error status, or a transfer that ended early (the
        partial file is kept, and the next call resumes it).
    """
    destination = Path(destination)
    if destination.is_file():
        logger.info("%s already downloaded", destination)
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    offset = partial.stat().st_size if partial.is_file() else 0
    headers = {"User-Agent": f"audioembed/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # our partial file is already the whole thing (or bigger)
            total = _total_from_content_range(error.headers.get("Content-Range", ""))
            if total == offset:
                os.replace(partial, destination)
                return destination
            partial.unlink()
            return download_file(url, destination, timeout=timeout, progress=progress)
        raise WeightsDownloadError(f"downloading {url} failed: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError, HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise WeightsDownloadError(
            f"could not reach {url} ({reason}). Are you offline? Download the file yourself and pass "
            "its path with --weights / --pca, or retry when online"
        ) from error
    with response:
        total = None
        if offset and response.status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if match is None or int(match.group(1)) != offset:
                raise WeightsDownloadError(
                    f"{url}: server answered a resume from byte {offset} with Content-Range "
                    f"{response.headers.get('Content-Range')!r}"
                )
            total = None if match.group(3) == "*" else int(match.group(3))
            mode = "ab"
        else:
            if offset:
                logger.info("%s ignored the resume request; starting over", url)
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None and length.isdigit() else None
            mode = "wb"
        show = sys.stderr.isatty() if progress is None else progress
        with (
            open(partial, mode) as file,
            tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=destination.name, disable=not show, leave=False,
            ) as bar,
        ):  # fmt: skip
            received = offset  # bytes in the partial file (the bar counts nothing when disabled)
            try:
                while chunk := response.read(CHUNK_BYTES):
                    file.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, HTTPException) as error:
                raise WeightsDownloadError(
                    f"download of {url} was interrupted after {received} bytes ({error}); run the "
                    "command again to resume"
                ) from error
            file.flush()
            os.fsync(file.fileno())
    size = partial.stat().st_size
    if total is not None and size != total:
        raise WeightsDownloadError(
            f"download of {url} stopped at {size} of {total} bytes; run the command again to resume"
        )
    os.replace(partial, destination)  # atomic: a complete file or none
    return destination


def _total_from_content_range(value: str) -> int | None:
    match = _CONTENT_RANGE.fullmatch(value.strip())
    if match is None:
        return None
    total = match.group(3) or match.group(4)
    return None if total in (None, "*") else int(total)


def official_urls(base_url: str | None = None) -> tuple[str, str]:
    """The checkpoint and PCA URLs: the official ones, or the same file names under ``base_url``."""
    if base_url is None:
        return params.CHECKPOINT_URL, params.PCA_PARAMS_URL
    base = base_url.rstrip("/")
    return tuple(f"{base}/{file_name(url)}" for url in (params.CHECKPOINT_URL, params.PCA_PARAMS_URL))


def file_name(url: str) -> str:
    """The file name a URL downloads to (its last path component)."""
    name = Path(urlsplit(url).path).name
    if not name:
        raise WeightsDownloadError(f"cannot tell a file name from the URL {url!r}")
    return name
