"""The top-level ``audioembed`` command: help, version, command discovery and error handling."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from audioembed import __version__, cli
from audioembed.commands import Command
from audioembed.errors import InvalidOptionError


def _command(name: str, run) -> Command:
    return Command(name=name, help=f"the {name} command", configure=lambda parser: None, run=run)


def test_version_flag_prints_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"audioembed {__version__}"


def test_no_command_prints_help_and_returns_usage_code(capsys):
    assert cli.main([]) == cli.EXIT_USAGE
    assert "usage: audioembed" in capsys.readouterr().err


def test_console_script_runs_in_a_subprocess():
    completed = subprocess.run(
        [sys.executable, "-m", "audioembed.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "VGGish" in completed.stdout


def test_duplicate_command_names_are_rejected():
    run = lambda args: 0  # noqa: E731
    with pytest.raises(ValueError, match="'twice'"):
        cli.build_parser([_command("twice", run), _command("twice", run)])


def test_package_errors_print_a_message_not_a_traceback(monkeypatch, capsys):
    def failing(args: argparse.Namespace) -> int:
        raise InvalidOptionError("hop_seconds must be a multiple of 0.01, got 0.015")

    monkeypatch.setattr(cli, "builtin_commands", lambda: iter([_command("boom", failing)]))
    monkeypatch.setattr(cli, "plugin_commands", lambda: iter([]))
    assert cli.main(["boom"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "audioembed boom: error: hop_seconds must be a multiple of 0.01, got 0.015" in err
    assert "Traceback" not in err


def test_plugin_that_is_not_a_command_is_a_type_error(monkeypatch):
    class FakeEntryPoint:
        name = "bogus"
        value = "somewhere:thing"

        def load(self):
            return object()

    monkeypatch.setattr(cli.metadata, "entry_points", lambda group: [FakeEntryPoint()])
    with pytest.raises(TypeError, match="'bogus'"):
        list(cli.plugin_commands())


def test_importing_the_package_is_light_until_a_name_is_used():
    code = (
        "import sys, audioembed, audioembed.errors; "
        "light = 'numpy' not in sys.modules; "
        "audioembed.Embedder; "
        "print(light, 'numpy' in sys.modules)"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.split() == ["True", "True"]
