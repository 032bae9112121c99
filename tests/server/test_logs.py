"""Structured request logs: key=value by default, JSON on request; one line per event."""

from __future__ import annotations

import json
import logging

import pytest
from audioembed_server import logs


@pytest.fixture
def log_format():
    yield
    logs._format = "kv"  # other tests expect the default


def test_key_value_lines_quote_values_with_spaces(log_format):
    logs._format = "kv"
    line = logs.format_event(
        "request", {"method": "Embed", "code": "OK", "ms": 12.3456, "error": 'bad "x" y'}
    )
    assert line == 'event=request method=Embed code=OK ms=12.35 error="bad \\"x\\" y"'


def test_json_lines_parse_back(log_format):
    logs._format = "json"
    line = logs.format_event("request", {"method": "EmbedStream", "examples": 3, "peer": "ipv4:127.0.0.1:5"})
    assert json.loads(line) == {
        "event": "request",
        "method": "EmbedStream",
        "examples": 3,
        "peer": "ipv4:127.0.0.1:5",
    }


def test_log_event_goes_to_the_server_logger(caplog, log_format):
    with caplog.at_level(logging.INFO, logger=logs.LOGGER_NAME):
        logs.log_event("listening", port=50051)
    assert caplog.records[-1].name == logs.LOGGER_NAME
    assert caplog.records[-1].getMessage() == "event=listening port=50051"
