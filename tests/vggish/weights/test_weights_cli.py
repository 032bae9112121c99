"""``audioembed weights {download,convert,info,synth}``, run in-process through ``cli.main``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.numpy
from http_server import Behaviour, serve

from audioembed import cli, weights_install
from audioembed.vggish import load_vggish
from audioembed.vggish.weights import read_weights, synthetic
from audioembed.vggish.weights.resolve import HOME_ENV


def test_synth_writes_deterministic_synthetic_weights_with_pca(tmp_path, capsys, synthetic_tensors):
    path = tmp_path / "a.safetensors"
    assert cli.main(["weights", "synth", "--seed", "11", "-o", str(path)]) == 0  # the session fixture's seed
    assert "SYNTHETIC weights (seed 11) and PCA" in capsys.readouterr().out
    weights = read_weights(path)
    assert weights.synthetic and weights.metadata["seed"] == "11"
    assert weights.metadata["source_file"] == "synthetic (seed 11)"
    assert weights.pca is not None
    for name, expected in synthetic_tensors.items():  # same seed, same weights, in another process run
        np.testing.assert_array_equal(weights.tensors[name], expected)


def test_synth_creates_missing_directories_and_reports_unwritable_paths(
    tmp_path, capsys, monkeypatch, synthetic_tensors
):
    monkeypatch.setattr(synthetic, "synthesize_weights", lambda seed: synthetic_tensors)  # skip regenerating
    nested = tmp_path / "new" / "cache" / "vggish.safetensors"  # like a first ~/.cache/audioembed
    assert cli.main(["weights", "synth", "--seed", "11", "-o", str(nested)]) == 0
    assert read_weights(nested).synthetic
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    unwritable = blocker / "w.safetensors"
    assert cli.main(["weights", "synth", "--seed", "11", "-o", str(unwritable)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert f"cannot write {unwritable}" in err and "Traceback" not in err


def test_synth_without_pca(tmp_path, capsys, monkeypatch, synthetic_tensors):
    monkeypatch.setattr(synthetic, "synthesize_weights", lambda seed: synthetic_tensors)  # skip regenerating
    path = tmp_path / "b.safetensors"
    assert cli.main(["weights", "synth", "--seed", "11", "-o", str(path), "--no-pca"]) == 0
    assert capsys.readouterr().out.strip().endswith("(seed 11)")
    assert read_weights(path).pca is None


@pytest.mark.parametrize("seed", ["-3", "x"])
def test_synth_rejects_bad_seeds(tmp_path, capsys, seed):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["weights", "synth", "--seed", seed, "-o", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert f"seed must be a non-negative integer, got '{seed}'" in capsys.readouterr().err


def test_info_text_of_a_native_file(full_files, capsys):
    assert cli.main(["weights", "info", str(full_files["native"])]) == 0
    out = capsys.readouterr().out
    assert "format:    native" in out
    assert "synthetic: YES" in out
    assert "tensors:   18, 72,141,184 parameters" in out
    assert "vggish/fc1/fc1_1/weights           float32  [12288, 4096]" in out
    assert "pca_eigen_vectors                  float64  [128, 128]" in out
    assert f"sha256:    {read_weights(full_files['native']).sha256}" in out


@pytest.mark.parametrize(
    ("kind", "format_name", "tensors", "has_pca"),
    [
        ("tf-checkpoint", "tf-checkpoint", 18, False),
        ("npz", "npz", 0, True),
        ("pca-pth", "torch-legacy", 0, True),
    ],
)
def test_info_json_for_every_format(full_files, capsys, kind, format_name, tensors, has_pca):
    assert cli.main(["weights", "info", "--json", str(full_files[kind])]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["format"] == format_name
    assert len(described["tensors"]) == tensors
    assert bool(described["pca"]) == has_pca
    assert described["synthetic"] is False
    assert described["size_bytes"] == full_files[kind].stat().st_size


def test_info_of_a_checkpoint_of_another_model_lists_it_and_fails(tiny_checkpoint, capsys):
    assert cli.main(["weights", "info", str(tiny_checkpoint)]) == 1
    out = capsys.readouterr().out
    assert "global_step                        int64    []" in out
    assert "not loadable as VGGish" in out


def test_info_of_unknown_bytes_is_an_error_without_traceback(tmp_path, capsys):
    path = tmp_path / "x.bin"
    path.write_bytes(b"hello world, not weights" * 4)
    assert cli.main(["weights", "info", str(path)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "audioembed weights: error:" in err and "unknown weights format" in err
    assert "Traceback" not in err


def test_convert_checkpoint_and_pca_to_native(full_files, tmp_path, capsys, synthetic_tensors):
    out = tmp_path / "converted.safetensors"
    args = [
        "weights",
        "convert",
        str(full_files["tf-checkpoint"]),
        "--pca",
        str(full_files["npz"]),
        "-o",
        str(out),
    ]
    assert cli.main(args) == 0
    assert "18 tensors from" in capsys.readouterr().out
    weights = read_weights(out)
    assert weights.metadata["source_file"] == "vggish_model.ckpt"
    assert weights.metadata["source_format"] == "tf-checkpoint"
    assert weights.metadata["pca_source_file"] == "vggish_pca_params.npz"
    assert weights.metadata["source_sha256"] == read_weights(full_files["tf-checkpoint"]).sha256
    assert weights.pca is not None and not weights.synthetic
    np.testing.assert_array_equal(
        weights.tensors["vggish/conv2/weights"], synthetic_tensors["vggish/conv2/weights"]
    )


def test_convert_keeps_provenance_of_a_native_source(full_files, tmp_path):
    out = tmp_path / "copy.safetensors"
    assert cli.main(["weights", "convert", str(full_files["native"]), "-o", str(out)]) == 0
    weights = read_weights(out)
    assert weights.synthetic and weights.pca is not None  # PCA carried over from the source
    assert weights.metadata["source_file"] == "synthetic"


def test_convert_errors(full_files, tmp_path, capsys):
    out = str(tmp_path / "o.safetensors")
    assert cli.main(["weights", "convert", str(full_files["npz"]), "-o", out]) == cli.EXIT_USAGE
    assert "holds only PCA parameters; pass it with --pca" in capsys.readouterr().err
    args = [
        "weights",
        "convert",
        str(full_files["tf-checkpoint"]),
        "--pca",
        str(full_files["tf-checkpoint"]),
        "-o",
        out,
    ]
    assert cli.main(args) == cli.EXIT_USAGE
    assert "holds no PCA parameters" in capsys.readouterr().err
    assert cli.main(["weights", "convert", str(tmp_path / "missing.ckpt"), "-o", out]) == cli.EXIT_USAGE
    assert "does not exist" in capsys.readouterr().err


def test_download_when_already_installed_does_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(HOME_ENV, str(tmp_path))
    (tmp_path / "vggish.safetensors").write_bytes(b"installed")
    assert cli.main(["weights", "download", "--base-url", "http://127.0.0.1:9"]) == 0
    assert "already installed" in capsys.readouterr().out


def test_download_from_a_mirror(tmp_path, capsys, monkeypatch):
    # The real flow (download, convert, verify, install) is tested in test_weights_download.py.
    calls = []

    def fake_download_official(home, **options):
        calls.append((home, options))
        return home / "vggish.safetensors"

    monkeypatch.setattr(weights_install, "download_official", fake_download_official)
    home = tmp_path / "home"
    args = [
        "weights",
        "download",
        "--home",
        str(home),
        "--base-url",
        "http://127.0.0.1:9/m/",
        "--keep-download",
    ]
    assert cli.main(args) == 0
    assert calls == [
        (
            home,
            {
                "checkpoint_url": "http://127.0.0.1:9/m/vggish_model.ckpt",
                "pca_url": "http://127.0.0.1:9/m/vggish_pca_params.npz",
                "keep_download": True,
            },
        )
    ]
    out = capsys.readouterr().out
    assert "downloading http://127.0.0.1:9/m/vggish_model.ckpt" in out
    assert f"installed {home / 'vggish.safetensors'}" in out


def test_download_failure_is_reported(tmp_path, capsys, served_official):
    base, _ = served_official
    args = ["weights", "download", "--home", str(tmp_path), "--base-url", f"{base}/nowhere"]
    assert cli.main(args) == cli.EXIT_USAGE
    assert "HTTP 404" in capsys.readouterr().err


def test_download_force_discards_earlier_downloads(tmp_path, capsys):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "vggish_model.ckpt").write_bytes(b"an earlier, bad download")
    (downloads / "vggish_pca_params.npz.part").write_bytes(b"half")
    (tmp_path / "vggish.safetensors").write_bytes(b"installed")
    with serve(Behaviour()) as base:  # serves nothing: HTTP 404
        args = ["weights", "download", "--home", str(tmp_path), "--base-url", base, "--force"]
        assert cli.main(args) == cli.EXIT_USAGE
    assert "HTTP 404" in capsys.readouterr().err
    assert not list(downloads.iterdir())  # both earlier files were discarded before fetching
    assert (tmp_path / "vggish.safetensors").read_bytes() == b"installed"


def test_a_format_1_file_warns_once_loaded_and_converts_in_place_to_format_2(
    tmp_path, caplog, synthetic_tensors, synthetic_pca
):
    path = tmp_path / "old.safetensors"  # as an earlier version wrote it: every tensor in TF layout
    metadata = {"architecture": "vggish", "format_version": "1", "synthetic": "true", "has_pca": "true"}
    safetensors.numpy.save_file({**synthetic_tensors, **synthetic_pca}, path, metadata=metadata)
    examples = np.random.default_rng(3).normal(-2.0, 2.0, size=(3, 96, 64)).astype(np.float32)
    with caplog.at_level("WARNING"):
        old = load_vggish(path)(examples)
    assert "native weights file of format 1" in caplog.text
    assert f"audioembed weights convert {path} -o {path}" in caplog.text  # the advice works:
    caplog.clear()
    assert cli.main(["weights", "convert", str(path), "-o", str(path)]) == 0
    weights = read_weights(path)
    assert weights.metadata["format_version"] == "2" and weights.pca is not None
    with caplog.at_level("WARNING"):
        model = load_vggish(path)
    assert "format 1" not in caplog.text
    assert model.fc1_1.weight.data.flags.f_contiguous  # output-major now
    np.testing.assert_allclose(model(examples), old, rtol=1e-5, atol=1e-5 * np.abs(old).max())
