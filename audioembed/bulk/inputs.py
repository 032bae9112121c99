"""Turn the command line's input arguments into a list of audio files, each with its output name.

Arguments may be files, directories (searched recursively for audio extensions), glob patterns,
``@list.txt`` (one path per line) or ``-`` (paths on standard input). Each file gets a *relative name*
that its outputs mirror: its path inside a directory argument, or just its file name otherwise.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TextIO

from audioembed.errors import InvalidOptionError

# Containers libsndfile reads; matched case-insensitively when searching directories.
AUDIO_EXTENSIONS = frozenset(
    {
        ".wav",
        ".wave",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".mp3",
        ".aif",
        ".aiff",
        ".aifc",
        ".au",
        ".caf",
        ".w64",
    }
)


@dataclass(frozen=True)
class InputFile:
    """One file to embed.

    Attributes
    ----------
    path : Path
        Where to read it.
    relative_name : PurePosixPath
        Its name below the output root without extension (``"speech/a"`` for ``DIR/speech/a.wav``).
    """

    path: Path
    relative_name: PurePosixPath


def expand_inputs(arguments: Sequence[str], *, stdin: TextIO | None = None) -> list[InputFile]:
    """Expand input arguments into files, in argument order, directories sorted; no file twice.

    Raises
    ------
    InvalidOptionError
        An argument matches nothing, or two inputs would write the same output name.
    """
    files: list[InputFile] = []
    for argument in arguments:
        files.extend(_expand_one(argument, stdin or sys.stdin))
    unique = list({file.path.resolve(): file for file in files}.values())
    _check_names_unique(unique)
    return unique


def _expand_one(argument: str, stdin: TextIO) -> Iterable[InputFile]:
    if argument == "-":
        for line in stdin:
            yield from _expand_listed(line.strip())
        return
    if argument.startswith("@"):
        list_path = Path(argument[1:])
        try:
            lines = list_path.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise InvalidOptionError(
                f"cannot read input list {str(list_path)!r}: {error.strerror}"
            ) from error
        for line in lines:
            yield from _expand_listed(line.strip())
        return
    path = Path(argument)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        if not found:
            raise InvalidOptionError(f"directory {argument!r} contains no audio files ({_extensions()})")
        for file in found:
            yield InputFile(file, PurePosixPath(file.relative_to(path).with_suffix("").as_posix()))
        return
    if path.is_file():
        yield InputFile(path, PurePosixPath(path.stem))
        return
    if glob.has_magic(argument):
        matches = sorted(
            Path(match) for match in glob.glob(argument, recursive=True) if os.path.isfile(match)
        )
        if not matches:
            raise InvalidOptionError(f"pattern {argument!r} matches no files")
        for match in matches:
            yield InputFile(match, PurePosixPath(match.stem))
        return
    raise InvalidOptionError(f"input {argument!r} does not exist")


def _expand_listed(line: str) -> Iterable[InputFile]:
    """A path from a list file or stdin: blank lines and ``#`` comments are skipped."""
    if line and not line.startswith("#"):
        yield from _expand_one(line, sys.stdin)


def _check_names_unique(files: Sequence[InputFile]) -> None:
    owners: dict[PurePosixPath, Path] = {}
    for file in files:
        other = owners.setdefault(file.relative_name, file.path)
        if other != file.path:
            raise InvalidOptionError(
                f"inputs {str(other)!r} and {str(file.path)!r} would both write output "
                f"{str(file.relative_name)!r}; pass their common parent directory instead, "
                "so outputs mirror the tree"
            )


def _extensions() -> str:
    return " ".join(sorted(AUDIO_EXTENSIONS))
