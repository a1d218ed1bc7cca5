"""Shared fixtures: one local Ray for the whole session, and one two-node Ray cluster for node-loss tests."""

import os

import pytest

RAY_OBJECT_STORE_BYTES = 100 * 2**20  # the tests pass only small objects; Ray's default takes 30% of RAM per node


@pytest.fixture(scope="session")
def ray_local():
    """This process's Ray: 4 CPU slots and 2 declared (fake) GPUs, so GPU pinning is testable on a CPU machine."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        address="local", num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False,
        object_store_memory=RAY_OBJECT_STORE_BYTES,
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_cluster():
    """A head and one worker node of 1 CPU each, as separate raylets; not connected to this process."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Quick health checks, so a removed node is declared dead in about a second rather than half a minute.
    system_config = {"health_check_period_ms": 200, "health_check_failure_threshold": 3}
    cluster = Cluster(
        initialize_head=True, connect=False,
        head_node_args={"num_cpus": 1, "object_store_memory": RAY_OBJECT_STORE_BYTES, "include_dashboard": False,
                        "_system_config": system_config},
    )
    cluster.add_node(num_cpus=1, object_store_memory=RAY_OBJECT_STORE_BYTES)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


@pytest.fixture
def add_worker_node(ray_cluster):
    """Adds a 1-CPU worker node to ray_cluster and waits until it is up: for tests that remove nodes."""

    def add():
        ray_cluster.add_node(num_cpus=1, object_store_memory=RAY_OBJECT_STORE_BYTES)
        ray_cluster.wait_for_nodes()

    return add
