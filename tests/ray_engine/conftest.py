"""One real Ray per test module: started once, small, no dashboard, shut down at the module's end."""

from __future__ import annotations

import logging

import pytest

from tests.ray_engine.ray_corpus import make_corpus

OBJECT_STORE_BYTES = 128 * 1024 * 1024  # Ray's floor is ~75 MB; the weights shipped once spill to disk


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def local_ray():
    """``ray.init(num_cpus=2)`` on this machine, for the whole module."""
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        logging_level=logging.WARNING,
    )
    yield ray
    ray.shutdown()
