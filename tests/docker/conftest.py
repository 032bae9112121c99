"""Fixtures of the image test: a Docker engine or a skip, one image build per session, throw-away containers.

The base image comes from ``AUDIOEMBED_DOCKER_BASE_IMAGE`` (CI sets it to the stand-in that
``shared/tools/docker-up`` builds, since the machines cannot pull from a registry); by default it is the
official slim image the Dockerfile names.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence

import pytest
from docker_harness import (
    BASE_IMAGE_ENV,
    BUILD_TIMEOUT_SECONDS,
    DEFAULT_BASE_IMAGE,
    LABEL,
    REPO_ROOT,
    Container,
    docker,
)


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """The server version of a reachable Docker engine; skips the test when there is none."""
    try:
        completed = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"no Docker engine reachable: {error}")
    if completed.returncode != 0:
        pytest.skip(f"no Docker engine reachable: `docker info` failed: {completed.stderr.strip()[:300]}")
    return completed.stdout.strip()


@pytest.fixture(scope="session")
def image(docker_engine: str) -> str:
    """Build the project's image once per session from this checkout; return its tag.

    The tag is derived from the checkout's path, so re-runs reuse docker's layer cache and parallel
    checkouts on one engine never overwrite each other's image.
    """
    base = os.environ.get(BASE_IMAGE_ENV) or DEFAULT_BASE_IMAGE
    tag = f"audioembed-test:{hashlib.sha1(str(REPO_ROOT).encode()).hexdigest()[:12]}"
    completed = docker(
        "build",
        "--network",
        "host",
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--label",
        LABEL,
        "--tag",
        tag,
        str(REPO_ROOT),
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    if completed.returncode != 0:
        hint = (
            ""
            if os.environ.get(BASE_IMAGE_ENV)
            else f"\n(no {BASE_IMAGE_ENV} set, so the base is {DEFAULT_BASE_IMAGE}; on a machine "
            f"without registry access set it to the image `shared/tools/docker-up` prints)"
        )
        pytest.fail(
            f"docker build with base {base!r} failed:{hint}\n{(completed.stdout + completed.stderr)[-4000:]}"
        )
    return tag


@pytest.fixture(scope="module")
def run_container(image: str) -> Iterator[Callable[..., Container]]:
    """Factory: ``run_container(*docker_run_options, command=())`` starts a detached container on the host
    network and returns it; every container it started is force-removed when the test module ends."""
    names: list[str] = []

    def start(*options: str, command: Sequence[str] = ()) -> Container:
        name = f"audioembed-test-{uuid.uuid4().hex[:12]}"
        names.append(name)
        docker(
            "run",
            "--detach",
            "--name",
            name,
            "--label",
            LABEL,
            "--network",
            "host",
            *options,
            image,
            *command,
        )
        return Container(name)

    yield start
    for name in names:
        # -v: also the anonymous /models volume the image declares, so tests leave no volumes behind.
        docker("rm", "--force", "--volumes", name, check=False)
