"""Shared fixtures: one local Ray for the whole session, and one two-node Ray cluster for node-loss tests."""

import os
import signal

import pytest
import torch

RAY_OBJECT_STORE_BYTES = 100 * 2**20  # the tests pass only small objects; Ray's default takes 30% of RAM per node


def pytest_configure(config):
    """Take Ctrl-C as a terminal does even where the suite was started with SIGINT ignored.

    A shell starts a script's background jobs with SIGINT ignored, every process below inherits
    that, and the Ctrl-C trials' jobs would then finish as if never interrupted. A handled signal
    is reset to its default in each program this process starts, so they take SIGINT again.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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


@pytest.fixture(scope="session")
def digits_snapshot(tmp_path_factory):
    """An untrained tiny cgan (8x8, z_dim 8, width 4) with the classes of builtin:digits, for quick synthesis jobs."""
    from gen_aug.checkpoint import save_snapshot
    from gen_aug.data import load_data
    from gen_aug.models import build_model

    names = load_data("builtin:digits").class_names
    model = build_model("cgan", {"resolution": 8, "channels": 1, "num_classes": len(names), "z_dim": 8, "width": 4})
    path = tmp_path_factory.mktemp("digits-snapshot") / "model.safetensors"
    save_snapshot(path, model, {"class_names": list(names)})
    return str(path)


@pytest.fixture(scope="session")
def digits_cdm_snapshot(tmp_path_factory):
    """An untrained tiny cdm (8x8, width 4, 4 sampler steps) with the classes of builtin:digits, for variant jobs."""
    from gen_aug.checkpoint import save_snapshot
    from gen_aug.data import load_data
    from gen_aug.models import build_model

    names = load_data("builtin:digits").class_names
    torch.manual_seed(0)
    model = build_model("cdm", {"resolution": 8, "channels": 1, "num_classes": len(names), "width": 4, "steps": 4})
    path = tmp_path_factory.mktemp("digits-cdm-snapshot") / "model.safetensors"
    save_snapshot(path, model.eval(), {"class_names": list(names)})
    return str(path)


@pytest.fixture(scope="module")
def private_classifier_cache(tmp_path_factory):
    """GENAUG_CACHE pointed at a fresh folder for one test module, so cached reference classifiers never leak in."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("classifier-cache")
        patch.setenv("GENAUG_CACHE", str(folder))
        yield folder
