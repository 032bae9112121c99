"""The Kubernetes manifests in deploy/ agree with the server: real flags, same ports, matching grace."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from audioembed_server import SERVICE_NAME
from audioembed_server.client_command import COMMAND as CLIENT_COMMAND
from audioembed_server.config import ServerConfig, config_from, env_name
from audioembed_server.multiprocess import DRAIN_MARGIN_SECONDS
from audioembed_server.serve_command import COMMAND as SERVE_COMMAND

from audioembed import cli
from audioembed.vggish.weights.resolve import HOME_ENV

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SERVER_VARIABLES = {env_name(f.name) for f in dataclasses.fields(ServerConfig)}
LIBRARY_VARIABLES = {HOME_ENV}  # read by the library itself (the weights cache), not serve flags
CLOSE_SECONDS = 5  # at least this beyond the drain grace: close the batcher, exit the interpreters


def _documents() -> dict[str, dict[str, Any]]:
    documents = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            documents[document["kind"]] = document
    return documents


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    return _documents()


@pytest.fixture(scope="module")
def pod(manifests) -> dict[str, Any]:
    return manifests["Deployment"]["spec"]["template"]


@pytest.fixture(scope="module")
def server(pod) -> dict[str, Any]:
    (container,) = [c for c in pod["spec"]["containers"] if c["args"][:1] == ["serve"]]
    return container


@pytest.fixture(scope="module")
def config(server) -> ServerConfig:
    """The configuration the server container would run with (the flags' own parsing and checks)."""
    values = {e["name"]: e["value"] for e in server["env"] if "value" in e and e["name"] in SERVER_VARIABLES}
    parser = cli.build_parser([SERVE_COMMAND, CLIENT_COMMAND])
    return config_from(parser.parse_args(server["args"]), values)


def test_the_manifests_hold_a_deployment_and_a_headless_service(manifests):
    assert set(manifests) == {"Deployment", "Service"}
    assert manifests["Service"]["spec"]["clusterIP"] == "None"  # DNS returns every pod: client balancing


def test_every_variable_is_a_server_flag_or_the_librarys_own(pod):
    for container in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
        for variable in container.get("env", []):
            name = variable["name"]
            assert name in SERVER_VARIABLES | LIBRARY_VARIABLES, f"{container['name']}: {name} is no flag"


def test_every_container_runs_a_real_command(pod):
    parser = cli.build_parser()  # every command of the installed CLI
    for container in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
        args = parser.parse_args(container["args"])
        assert args._run is not None, container["name"]


def test_the_server_configuration_is_valid_and_uses_the_cpus_it_requests(server, config):
    assert config.processes == int(server["resources"]["requests"]["cpu"])
    assert config.metrics_port is not None and config.log_format == "json"


def test_ports_and_probes_match_the_server(server, config, manifests, pod):
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"grpc": config.port, "metrics": config.metrics_port}
    for probe in ("startupProbe", "readinessProbe"):  # ready = the embedding service has its model
        assert server[probe]["grpc"] == {"port": config.port, "service": SERVICE_NAME}, probe
    assert server["livenessProbe"]["grpc"] == {"port": config.port}  # live = the process answers at all
    annotations = pod["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == config.metrics_port
    service = manifests["Service"]["spec"]
    assert service["selector"].items() <= pod["metadata"]["labels"].items()
    for port in service["ports"]:
        assert ports[port["targetPort"]] == port["port"], port


def test_termination_grace_covers_the_servers_drain(pod, config):
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert config.grace_seconds + CLOSE_SECONDS <= grace <= config.grace_seconds + DRAIN_MARGIN_SECONDS


def test_the_weights_volume_is_where_the_library_looks(pod, server):
    home = {c["name"]: _env(c, HOME_ENV) for c in pod["spec"]["containers"] + pod["spec"]["initContainers"]}
    assert len(set(home.values())) == 1, home  # the fetcher writes where the server reads
    mounts = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
    assert mounts[home[server["name"]]] in {v["name"] for v in pod["spec"]["volumes"]}


def _env(container: dict[str, Any], name: str) -> str | None:
    return next((e.get("value") for e in container.get("env", []) if e["name"] == name), None)
