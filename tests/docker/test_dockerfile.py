"""The Dockerfile agrees with the code it packages (no Docker engine needed).

The image repeats a few facts of the server (service name, port, variable names) as literals; these tests
fail when the server changes one of them and the Dockerfile does not follow.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from audioembed_server import healthcheck
from audioembed_server.config import ServerConfig, env_name
from audioembed_server.servicer import SERVICE_NAME

from audioembed.vggish.weights.resolve import HOME_ENV

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction, continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [
        (m.group(1).upper(), m.group(2).strip())
        for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, flags=re.MULTILINE)
    ]


def _runtime_env() -> dict[str, str]:
    """The ENV of the last stage (the image users run)."""
    stages = [[]]
    for instruction, arguments in _instructions():
        if instruction == "FROM":
            stages.append([])
        stages[-1].append((instruction, arguments))
    env: dict[str, str] = {}
    for instruction, arguments in stages[-1]:
        if instruction == "ENV":
            env.update(pair.split("=", 1) for pair in arguments.split())
    return env


def test_healthcheck_probes_the_embedding_service_by_its_proto_name():
    (arguments,) = [a for i, a in _instructions() if i == "HEALTHCHECK"]
    command = json.loads(arguments[arguments.index("CMD") + len("CMD") :])
    assert command[1:3] == ["-m", healthcheck.__name__]
    assert command[command.index("--service") + 1] == SERVICE_NAME


def test_environment_uses_the_server_variable_names():
    env = _runtime_env()
    fields = {env_name(name) for name in ServerConfig.__dataclass_fields__}
    server_settings = {key for key in env if key.startswith("AUDIOEMBED_") and key != HOME_ENV}
    assert server_settings <= fields, server_settings - fields
    assert env[HOME_ENV] == "/models"


def test_exposed_port_is_the_configured_and_probed_port():
    env = _runtime_env()
    (exposed,) = [a for i, a in _instructions() if i == "EXPOSE"]
    assert exposed == env["AUDIOEMBED_PORT"] == str(ServerConfig().port) == str(healthcheck.DEFAULT_PORT)


def test_models_volume_is_the_weights_home():
    (volume,) = [a for i, a in _instructions() if i == "VOLUME"]
    assert json.loads(volume) == [_runtime_env()[HOME_ENV]]
