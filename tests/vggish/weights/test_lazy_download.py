"""Loading a model never imports the downloader's network stack; asking for it still works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_loading_weights_does_not_import_the_network_stack():
    code = (
        "import sys\n"
        "from audioembed.vggish.weights import load_vggish, read_weights, resolve_weights\n"
        "print(sorted(m for m in ('ssl', 'urllib.request', 'http.client') if m in sys.modules))\n"
        "from audioembed.vggish import weights\n"
        "print(weights.download_file.__module__, 'ssl' in sys.modules)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert completed.stdout.splitlines() == ["[]", "audioembed.vggish.weights.download True"]


def test_an_unknown_name_is_still_an_attribute_error():
    import pytest

    from audioembed.vggish import weights

    with pytest.raises(AttributeError, match="no attribute 'download_everything'"):
        weights.download_everything  # noqa: B018
