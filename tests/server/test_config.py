"""Server configuration: flags win over AUDIOEMBED_* variables, which win over defaults; bad values named."""

from __future__ import annotations

import argparse

import pytest
from audioembed_server.config import ServerConfig, add_arguments, config_from, env_name

from audioembed.errors import InvalidOptionError


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_without_flags_or_environment():
    config = config_from(_parse(), env={})
    assert config == ServerConfig()
    assert (config.port, config.max_receive_message_bytes, config.tls) == (50051, 64 * 1024 * 1024, False)
    # 25 ms: 16 concurrent 4 s clients reach 0.84x in-process throughput (0.59x at 5 ms).
    assert config.max_queue_delay_ms == 25.0


def test_environment_fills_in_and_flags_win():
    env = {
        "AUDIOEMBED_HOST": "127.0.0.1",
        "AUDIOEMBED_PORT": "6000",
        "AUDIOEMBED_WEIGHTS": "/models/vggish.safetensors",
        "AUDIOEMBED_PCA": "/models/pca.npz",
        "AUDIOEMBED_MAX_BATCH_EXAMPLES": "32",
        "AUDIOEMBED_MAX_QUEUE_DELAY_MS": "2.5",
        "AUDIOEMBED_ALLOW_DOWNLOAD": "true",
        "AUDIOEMBED_TOKEN": "from-env",
    }
    config = config_from(_parse("--port", "7000", "--max-batch-examples", "16"), env=env)
    assert (config.host, config.port, config.max_batch_examples) == ("127.0.0.1", 7000, 16)
    assert (config.weights, config.pca, config.max_queue_delay_ms) == (
        env["AUDIOEMBED_WEIGHTS"],
        env["AUDIOEMBED_PCA"],
        2.5,
    )
    assert config.allow_download is True and config.token == "from-env"
    assert "from-env" not in repr(config)  # secrets stay out of logs
    assert config_from(_parse("--metrics-port", "0"), env={}).metrics_port == 0


def test_every_field_has_a_flag_and_a_variable():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    help_text = parser.format_help()
    for name in ServerConfig.__dataclass_fields__:
        assert "--" + name.replace("_", "-") in help_text
        assert env_name(name) in help_text


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (("--port", "70000"), {}, "port must be an integer in 0..65535, got 70000"),
        (("--port", "http"), {}, "--port must be an int, got 'http'"),
        ((), {"AUDIOEMBED_WORKERS": "many"}, "AUDIOEMBED_WORKERS must be an int, got 'many'"),
        ((), {"AUDIOEMBED_ALLOW_DOWNLOAD": "perhaps"}, "AUDIOEMBED_ALLOW_DOWNLOAD must be a boolean"),
        (("--max-batch-examples", "0"), {}, "max_batch_examples must be a positive integer, got 0"),
        (
            ("--max-queue-examples", "8", "--max-batch-examples", "16"),
            {},
            r"max_queue_examples \(8\) must be at least",
        ),
        (("--max-queue-delay-ms", "-1"), {}, "max_queue_delay_ms must be >= 0, got -1.0"),
        (("--max-receive-message-mb", "0"), {}, "max_receive_message_mb must be > 0, got 0.0"),
        (("--tls-cert", "cert.pem"), {}, "TLS needs both tls_cert and tls_key"),
        (
            ("--tls-cert", "no-such.pem", "--tls-key", "no-such.key"),
            {},
            "tls_cert file does not exist: 'no-such.pem'",
        ),
        (("--token", "  "), {}, "token must not be empty or blank"),
        (("--log-format", "xml"), {}, "log_format must be 'kv' or 'json', got 'xml'"),
        (("--resampler", "best"), {}, "resampler must be 'reference' or 'fast', got 'best'"),
        (
            ("--workers", "4"),
            {"AUDIOEMBED_MAX_CONCURRENT_STREAMS": "4"},
            r"max_concurrent_streams \(4\) must be less than workers \(4\)",
        ),
        (("--workers", "1"), {}, r"max_concurrent_streams \(1\) must be less than workers \(1\)"),
        (("--max-concurrent-streams", "0"), {}, "max_concurrent_streams must be a positive integer, got 0"),
        (("--stream-idle-seconds", "0"), {}, "stream_idle_seconds must be > 0, got 0.0"),
    ],
)
def test_bad_values_are_named(argv, env, message):
    with pytest.raises(InvalidOptionError, match=message):
        config_from(_parse(*argv), env=env)


def test_stream_cap_defaults_to_half_the_workers_and_can_be_set():
    assert ServerConfig().max_concurrent_streams == 4 and ServerConfig().stream_idle_seconds == 30.0
    assert ServerConfig(workers=2).max_concurrent_streams == 1
    assert ServerConfig(workers=5).max_concurrent_streams == 2
    env = {"AUDIOEMBED_MAX_CONCURRENT_STREAMS": "3", "AUDIOEMBED_STREAM_IDLE_SECONDS": "2.5"}
    config = config_from(_parse("--workers", "6"), env=env)
    assert (config.max_concurrent_streams, config.stream_idle_seconds) == (3, 2.5)
    assert config_from(_parse("--max-concurrent-streams", "5"), env=env).max_concurrent_streams == 5


def test_ipv6_hosts_are_bracketed_in_the_address():
    assert ServerConfig(host="::1", port=5).address == "[::1]:5"
    assert ServerConfig(host="127.0.0.1", port=5).address == "127.0.0.1:5"
