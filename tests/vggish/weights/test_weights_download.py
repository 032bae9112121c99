"""Downloads from a loopback HTTP server: resume, atomic rename, HTTP errors, offline, verification."""

from __future__ import annotations

import socket

import pytest
from http_server import Behaviour, serve

from audioembed.errors import WeightsDownloadError, WeightsVerificationError
from audioembed.vggish.weights import download_file, read_weights
from audioembed.vggish.weights.download import official_urls
from audioembed.weights_install import download_official


@pytest.fixture
def blob(tmp_path):
    path = tmp_path / "served" / "blob.bin"
    path.parent.mkdir()
    path.write_bytes(bytes(range(256)) * 4000)  # 1 MB, position-dependent content
    return path


def test_download_complete_file(tmp_path, blob):
    behaviour = Behaviour(files={"/blob.bin": blob})
    with serve(behaviour) as base:
        path = download_file(f"{base}/blob.bin", tmp_path / "out" / "blob.bin", progress=False)
    assert path.read_bytes() == blob.read_bytes()
    assert not (tmp_path / "out" / "blob.bin.part").exists()
    assert behaviour.requests == [("/blob.bin", None)]


def test_progress_bar_on_request(tmp_path, blob, capsys):
    with serve(Behaviour(files={"/blob.bin": blob})) as base:
        download_file(f"{base}/blob.bin", tmp_path / "blob.bin", progress=True)
    assert "blob.bin" in capsys.readouterr().err  # tqdm draws on stderr


def test_no_progress_bar_when_not_a_terminal(tmp_path, blob, capsys):
    with serve(Behaviour(files={"/blob.bin": blob})) as base:
        download_file(f"{base}/blob.bin", tmp_path / "blob.bin")  # stderr is captured: not a TTY
    assert capsys.readouterr().err == ""


def test_interrupted_download_leaves_only_a_part_file_then_resumes(tmp_path, blob):
    behaviour = Behaviour(files={"/blob.bin": blob}, cut_after={"/blob.bin": 300_000})
    target = tmp_path / "blob.bin"
    with serve(behaviour) as base:
        with pytest.raises(WeightsDownloadError, match="run the command again to resume"):
            download_file(f"{base}/blob.bin", target, progress=False)
        assert not target.exists()  # never a half file under the final name
        partial = tmp_path / "blob.bin.part"
        assert 0 < partial.stat().st_size <= 300_000
        received = partial.stat().st_size
        download_file(f"{base}/blob.bin", target, progress=False)
    assert target.read_bytes() == blob.read_bytes()
    assert behaviour.requests[-1] == ("/blob.bin", f"bytes={received}-")
    assert not partial.exists()


def test_server_that_ignores_range_restarts_from_zero(tmp_path, blob):
    (tmp_path / "blob.bin.part").write_bytes(b"garbage!" * 100)
    behaviour = Behaviour(files={"/blob.bin": blob}, ignore_range=True)
    with serve(behaviour) as base:
        download_file(f"{base}/blob.bin", tmp_path / "blob.bin", progress=False)
    assert (tmp_path / "blob.bin").read_bytes() == blob.read_bytes()
    assert behaviour.requests == [("/blob.bin", "bytes=800-")]


def test_complete_part_file_is_renamed_after_a_416(tmp_path, blob):
    (tmp_path / "blob.bin.part").write_bytes(blob.read_bytes())
    with serve(Behaviour(files={"/blob.bin": blob})) as base:
        download_file(f"{base}/blob.bin", tmp_path / "blob.bin", progress=False)
    assert (tmp_path / "blob.bin").read_bytes() == blob.read_bytes()


def test_existing_destination_is_not_downloaded_again(tmp_path, blob):
    (tmp_path / "blob.bin").write_bytes(b"already here")
    behaviour = Behaviour(files={"/blob.bin": blob})
    with serve(behaviour) as base:
        download_file(f"{base}/blob.bin", tmp_path / "blob.bin", progress=False)
    assert behaviour.requests == []
    assert (tmp_path / "blob.bin").read_bytes() == b"already here"


@pytest.mark.parametrize(("status", "path"), [(404, "/missing.bin"), (500, "/blob.bin"), (403, "/blob.bin")])
def test_http_errors(tmp_path, blob, status, path):
    behaviour = Behaviour(files={"/blob.bin": blob}, status={} if status == 404 else {"/blob.bin": status})
    with (
        serve(behaviour) as base,
        pytest.raises(WeightsDownloadError, match=rf"{base}{path} failed: HTTP {status}"),
    ):
        download_file(f"{base}{path}", tmp_path / "x.bin", progress=False)
    assert not (tmp_path / "x.bin").exists()


def test_offline_connection_refused(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(WeightsDownloadError, match=r"could not reach .*Are you offline\?"):
        download_file(f"http://127.0.0.1:{port}/vggish_model.ckpt", tmp_path / "x.ckpt", progress=False)


def test_official_urls_and_a_mirror():
    assert official_urls() == (
        "https://storage.googleapis.com/audioset/vggish_model.ckpt",
        "https://storage.googleapis.com/audioset/vggish_pca_params.npz",
    )
    assert official_urls("http://127.0.0.1:9/mirror/") == (
        "http://127.0.0.1:9/mirror/vggish_model.ckpt",
        "http://127.0.0.1:9/mirror/vggish_pca_params.npz",
    )


# --- the official flow, with full-size synthetic files ------------------------------------------------


def test_official_download_converts_verifies_and_installs(tmp_path, served_official, synthetic_statistics):
    base, _ = served_official
    ckpt_url, pca_url = official_urls(base)
    installed = download_official(
        tmp_path, checkpoint_url=ckpt_url, pca_url=pca_url, expected=synthetic_statistics, progress=False
    )
    assert installed == tmp_path / "vggish.safetensors"
    weights = read_weights(installed)
    assert weights.format == "native" and weights.pca is not None and not weights.synthetic
    assert weights.metadata["source_file"] == "vggish_model.ckpt"
    assert weights.metadata["source_format"] == "tf-checkpoint"
    assert weights.metadata["pca_source_file"] == "vggish_pca_params.npz"
    assert len(weights.metadata["source_sha256"]) == 64
    # The 277 MB checkpoint is dropped after conversion; the small PCA file stays.
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == ["vggish_pca_params.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["downloads", "vggish.safetensors"]


def test_failed_verification_replaces_nothing_and_says_what_failed(tmp_path, served_official):
    base, _ = served_official
    ckpt_url, pca_url = official_urls(base)
    (tmp_path / "vggish.safetensors").write_bytes(b"the user's previous file")
    with pytest.raises(WeightsVerificationError, match=r"raw mean .* vs expected 0\.000657") as error:
        download_official(
            tmp_path, checkpoint_url=ckpt_url, pca_url=pca_url, progress=False
        )  # reference stats
    assert f"{tmp_path / 'vggish.safetensors'} is unchanged" in str(error.value)
    assert "audioembed weights download --force" in str(error.value)
    assert (tmp_path / "vggish.safetensors").read_bytes() == b"the user's previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "downloads",
        "vggish.safetensors",
    ]  # no staging file
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == [
        "vggish_model.ckpt",
        "vggish_pca_params.npz",
    ]


def test_official_download_with_the_pca_url_wrong(tmp_path, served_official):
    base, _ = served_official
    with pytest.raises(WeightsDownloadError, match="HTTP 404"):
        download_official(
            tmp_path, checkpoint_url=f"{base}/nothing.ckpt", pca_url=f"{base}/x.npz", progress=False
        )
    assert not (tmp_path / "vggish.safetensors").exists()
