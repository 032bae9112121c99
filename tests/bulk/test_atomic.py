"""Atomic writes: the final name appears only with complete content; failures leave nothing behind."""

from __future__ import annotations

import pytest

from audioembed.bulk.atomic import atomic_file


def test_file_appears_only_when_the_block_completes(tmp_path):
    target = tmp_path / "deep" / "out.bin"
    with atomic_file(target) as handle:
        handle.write(b"data")
        assert not target.exists()
    assert target.read_bytes() == b"data"


@pytest.mark.parametrize("exception", [RuntimeError("boom"), KeyboardInterrupt()])
def test_interrupted_write_leaves_old_content_and_no_temporary(tmp_path, exception):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(type(exception)), atomic_file(target) as handle:
        handle.write(b"half")
        raise exception
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_finished_files_follow_the_umask_not_the_temporary_files_0600(tmp_path):
    import os

    previous = os.umask(0o022)
    try:
        with atomic_file(tmp_path / "shared.bin") as handle:
            handle.write(b"x")
    finally:
        os.umask(previous)
    assert (tmp_path / "shared.bin").stat().st_mode & 0o777 == 0o644
