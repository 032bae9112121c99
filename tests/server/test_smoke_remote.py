"""``audioembed smoke-test --server``: the reference smoke test through a real service on loopback."""

from __future__ import annotations

import socket

import pytest

from audioembed import cli


def test_passes_through_the_service_and_matches_in_process(served, synthetic_weights, capsys):
    assert cli.main(["smoke-test", "--server", served[1], "--weights", str(synthetic_weights)]) == 0
    out = capsys.readouterr().out
    assert "[ok] service raw == in-process raw" in out
    assert "[ok] service and in-process use the same weights" in out
    assert "Looks Good To Me" in out


def test_without_local_weights_it_checks_the_service_alone(served, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AUDIOEMBED_HOME", str(tmp_path))
    monkeypatch.delenv("AUDIOEMBED_WEIGHTS", raising=False)
    assert cli.main(["smoke-test", "--server", served[1]]) == 0
    out = capsys.readouterr().out
    assert "checking the service alone" in out and "[ok] service: deterministic" in out
    assert "in-process" not in out.replace("no in-process comparison", "")


@pytest.mark.timeout(120)
def test_an_unreachable_server_fails_the_smoke_test(synthetic_weights, capsys):
    with socket.socket() as probe:  # a port nobody listens on: bound, never listened
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
        code = cli.main(
            ["smoke-test", "--server", address, "--timeout", "2", "--weights", str(synthetic_weights)]
        )
    out = capsys.readouterr().out
    assert code == 1 and "[FAIL] service: embed the test signal" in out and "Smoke test FAILED" in out
