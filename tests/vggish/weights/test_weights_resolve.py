"""Where weights come from: explicit path, environment variables, the cache, a download, or a clear error."""

from __future__ import annotations

import pytest

from audioembed.errors import WeightsFormatError, WeightsNotFoundError
from audioembed.vggish.weights import resolve
from audioembed.vggish.weights.resolve import cached_weights_path, home_dir, resolve_pca, resolve_weights


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No weights configured anywhere; the cache is an empty temporary directory."""
    for name in (resolve.WEIGHTS_ENV, resolve.PCA_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(resolve.HOME_ENV, str(tmp_path / "home"))
    return tmp_path


def _file(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_home_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(resolve.HOME_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert home_dir() == tmp_path / ".cache" / "audioembed"
    monkeypatch.setenv(resolve.HOME_ENV, "~/elsewhere")
    assert home_dir() == tmp_path / "elsewhere"
    assert cached_weights_path() == tmp_path / "elsewhere" / "vggish.safetensors"


def test_order_explicit_then_env_then_cache(clean_env, monkeypatch):
    cache = _file(cached_weights_path())
    assert resolve_weights() == cache
    assert resolve_pca() == cache  # the cached native file holds the PCA parameters too
    env_weights = _file(clean_env / "env.ckpt")
    env_pca = _file(clean_env / "env.npz")
    monkeypatch.setenv(resolve.WEIGHTS_ENV, str(env_weights))
    monkeypatch.setenv(resolve.PCA_ENV, str(env_pca))
    assert resolve_weights() == env_weights
    assert resolve_pca() == env_pca
    explicit = _file(clean_env / "mine.pth")
    assert resolve_weights(explicit) == explicit
    assert resolve_pca(str(explicit)) == explicit


def test_nothing_found_says_which_command_fixes_it(clean_env):
    with pytest.raises(WeightsNotFoundError, match="Run `audioembed weights download`") as error:
        resolve_weights()
    assert "$AUDIOEMBED_WEIGHTS is not set" in str(error.value)
    assert "--weights PATH" in str(error.value)
    with pytest.raises(
        WeightsNotFoundError, match=r"\$AUDIOEMBED_PCA is not set.*audioembed weights download"
    ):
        resolve_pca()


def test_missing_explicit_and_env_paths_are_named(clean_env, monkeypatch):
    _file(cached_weights_path())  # a cache must not hide the user's mistake
    with pytest.raises(WeightsNotFoundError, match=r"weights file '.*nope\.ckpt' does not exist"):
        resolve_weights(clean_env / "nope.ckpt")
    monkeypatch.setenv(resolve.WEIGHTS_ENV, str(clean_env / "gone.ckpt"))
    with pytest.raises(
        WeightsNotFoundError, match=r"\$AUDIOEMBED_WEIGHTS \(weights\) '.*gone.ckpt' does not exist"
    ):
        resolve_weights()


def test_a_v2_checkpoint_prefix_gets_the_v2_message(clean_env):
    _file(clean_env / "model.ckpt.index")
    with pytest.raises(WeightsFormatError, match="prefix of a TensorFlow V2 checkpoint"):
        resolve_weights(clean_env / "model.ckpt")


def test_download_only_when_a_downloader_is_given(clean_env):
    calls = []

    def fake_download():
        calls.append(True)
        return _file(cached_weights_path())

    with pytest.raises(WeightsNotFoundError):
        resolve_weights(download=None)
    assert calls == []
    assert resolve_weights(download=fake_download) == cached_weights_path()
    assert calls == [True]
    assert resolve_pca(download=fake_download) == cached_weights_path()  # now cached: no second download
    assert calls == [True]
