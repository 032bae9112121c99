"""Input expansion for ``audioembed embed``: files, directories, globs, @lists, stdin; clear errors."""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath

import pytest

from audioembed.bulk.inputs import expand_inputs
from audioembed.errors import InvalidOptionError


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ["a.wav", "sub/b.FLAC", "sub/deeper/c.mp3", "notes.txt", "sub/d.ogg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def names(files) -> list[str]:
    return [str(f.relative_name) for f in files]


def test_directory_is_searched_recursively_by_audio_extension_and_mirrored(tree):
    assert names(expand_inputs([str(tree)])) == ["a", "sub/b", "sub/d", "sub/deeper/c"]


def test_single_file_and_glob_use_the_file_stem(tree):
    files = expand_inputs([str(tree / "a.wav"), str(tree / "sub" / "*.ogg")])
    assert names(files) == ["a", "d"]
    assert files[1].path == tree / "sub" / "d.ogg"


def test_list_file_and_stdin_skip_blank_lines_and_comments(tree):
    listing = tree / "list.txt"
    listing.write_text(f"# my files\n{tree / 'a.wav'}\n\n{tree / 'sub' / 'd.ogg'}\n")
    assert names(expand_inputs([f"@{listing}"])) == ["a", "d"]
    stdin = io.StringIO(f"{tree / 'sub' / 'b.FLAC'}\n")
    assert names(expand_inputs(["-"], stdin=stdin)) == ["b"]


def test_the_same_file_twice_is_embedded_once(tree):
    assert len(expand_inputs([str(tree / "a.wav"), str(tree / "a.wav"), str(tree / "*.wav")])) == 1


def test_two_inputs_writing_the_same_output_name_are_refused(tree):
    (tree / "other").mkdir()
    (tree / "other" / "a.flac").write_bytes(b"x")
    with pytest.raises(InvalidOptionError, match="would both write output 'a'"):
        expand_inputs([str(tree / "a.wav"), str(tree / "other" / "a.flac")])


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("missing.wav", "does not exist"),
        ("*.nothing", "matches no files"),
        ("@nolist.txt", "cannot read input list"),
    ],
)
def test_arguments_that_match_nothing_are_errors(tmp_path, monkeypatch, argument, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidOptionError, match=message):
        expand_inputs([argument])


def test_directory_without_audio_is_an_error(tmp_path):
    (tmp_path / "readme.md").write_text("hi")
    with pytest.raises(InvalidOptionError, match="contains no audio files"):
        expand_inputs([str(tmp_path)])


def test_relative_names_are_posix_paths(tree):
    assert all(isinstance(f.relative_name, PurePosixPath) for f in expand_inputs([str(tree)]))
