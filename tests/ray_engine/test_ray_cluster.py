"""The Ray engine on a two-node ``ray.cluster_utils.Cluster`` on this machine: work lands on both nodes."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from audioembed import Embedder
from audioembed.ray import embed_dataset
from tests.ray_engine.conftest import OBJECT_STORE_BYTES
from tests.ray_engine.ray_corpus import CLIPS, assert_same_npz_trees, embed

pytestmark = pytest.mark.slow  # two raylets start: ~10 s


@pytest.fixture(scope="module")
def cluster():
    """A head and a worker node, one CPU each, so a pool of two one-CPU actors must use both."""
    from ray.cluster_utils import Cluster

    nodes = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "object_store_memory": OBJECT_STORE_BYTES},
    )
    nodes.add_node(num_cpus=1, object_store_memory=OBJECT_STORE_BYTES)
    nodes.wait_for_nodes()
    yield nodes
    nodes.shutdown()


def test_cli_joins_the_cluster_by_address_ships_the_weights_and_matches_the_local_engine(
    cluster, corpus, tmp_path, synthetic_weights
):
    import ray

    common = [str(corpus), "--weights", str(synthetic_weights), "--unit-files", "2", "-q"]
    assert embed(*common, "-o", str(tmp_path / "local")) == 1  # the broken file
    remote = [
        "--engine",
        "ray",
        "--ray-address",
        cluster.address,
        "--actors",
        "2",
        "--ray-weights",
        "object-store",
    ]
    assert embed(*common, "-o", str(tmp_path / "ray"), *remote) == 1
    assert not ray.is_initialized()  # the run disconnected from the cluster it joined
    assert_same_npz_trees(tmp_path / "local", tmp_path / "ray")


def test_actors_run_on_both_nodes(cluster, corpus, synthetic_weights):
    import ray

    ray.init(address=cluster.address, logging_level=logging.WARNING)
    context = ray.data.DataContext.get_current()
    saved_wait = context.wait_for_min_actors_s
    try:
        node_ids = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
        assert len(node_ids) == 2
        # Both actors must be up before work is handed out, or the first one could take it all.
        context.wait_for_min_actors_s = 120
        paths = ray.data.from_items([{"path": str(corpus / name)} for name, *_ in CLIPS])
        rows = embed_dataset(paths, synthetic_weights, actors=2, inputs_per_call=1).take_all()
    finally:
        context.wait_for_min_actors_s = saved_wait
        ray.shutdown()
    assert {row["node_id"] for row in rows} == node_ids  # both actors got work, one per node
    embedder = Embedder(synthetic_weights)
    for row in rows:
        np.testing.assert_array_equal(row["embedding"], embedder.embed(row["path"]).embeddings)
