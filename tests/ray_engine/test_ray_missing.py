"""Without Ray installed, the package still imports and works; the Ray engine says which extra to install."""

from __future__ import annotations

import sys

import pytest

from audioembed.errors import MissingDependencyError
from audioembed.ray._deps import require_ray
from tests.audio_files import write_tone
from tests.ray_engine.ray_corpus import embed


@pytest.fixture
def no_ray(monkeypatch):
    for name in ("ray", "ray.data"):
        monkeypatch.setitem(sys.modules, name, None)  # any import of them now raises ImportError


def test_require_ray_names_the_extra(no_ray):
    with pytest.raises(MissingDependencyError, match=r'pip install "audioembed\[ray\]"'):
        require_ray()


def test_the_package_imports_and_the_local_engine_works_without_ray(no_ray, tmp_path, synthetic_weights):
    import audioembed.ray

    assert callable(audioembed.ray.embed_dataset)  # resolving the API does not import Ray
    (tmp_path / "in").mkdir()
    write_tone(tmp_path / "in" / "a.wav", seconds=1.0)
    assert embed(str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--weights", str(synthetic_weights)) == 0
    assert (tmp_path / "out" / "a.npz").exists()


def test_engine_ray_without_ray_is_a_clear_error_and_leaves_no_output(
    no_ray, tmp_path, synthetic_weights, capsys
):
    (tmp_path / "in").mkdir()
    write_tone(tmp_path / "in" / "a.wav", seconds=1.0)
    out = tmp_path / "out.jsonl"
    code = embed(str(tmp_path / "in"), "-o", str(out), "--weights", str(synthetic_weights), "--engine", "ray")
    assert code == 2
    assert 'pip install "audioembed[ray]"' in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".out.jsonl.*"))
