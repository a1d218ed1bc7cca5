"""The Ray this job runs on: a private one on this machine, or a cluster joined by address; and how many workers fit."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from gen_aug.errors import GenaugError
from gen_aug.synthesis.options import SynthesisOptions

ADDRESS_TIMEOUT_S = 5


class ray_session:
    """ray.init for this job (unless the caller already did) and ray.shutdown after it."""

    def __init__(self, address: str | None):
        self.address = address
        self.started = False

    def __enter__(self):
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        if self.address is not None:
            _check_reachable(self.address)
        if ray.is_initialized():
            return ray
        try:
            if self.address is None:
                # 'local' starts a private instance even where `ray start` left a cluster to join by default.
                # Ray turns token authentication on for it and says so in a warning line on every run: keep quiet.
                logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
                with _loopback_only():
                    ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)
            else:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise GenaugError(f"--address {self.address!r}: cannot join the Ray cluster ({error})") from None
        self.started = True
        return ray

    def __exit__(self, *exc_info):
        if self.started:
            import ray

            ray.shutdown()


@contextlib.contextmanager
def _loopback_only():
    """Make the Ray started inside bind its servers (GCS, raylets, workers) to 127.0.0.1 only.

    On Linux Ray replaces a loopback node address with the machine's own, and its servers then
    listen on every interface. The switch it keeps for single-machine use on macOS and Windows
    (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read once when ray is imported) keeps everything on
    loopback; it is set here for the one ray.init only, so that joining a cluster later in the
    same process finds the machine's own address again.
    """
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def _check_reachable(address: str) -> None:
    """Fail in seconds where ray.init would retry for minutes: nothing listening at HOST:PORT."""
    if address == "auto":
        return  # ray finds a local cluster from its own records, or fails at once
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise GenaugError(f"--address {address!r}: not HOST:PORT (expected auto, HOST:PORT or ray://HOST:PORT)")
    try:
        socket.create_connection((host, port), timeout=ADDRESS_TIMEOUT_S).close()
    except OSError as error:
        raise GenaugError(
            f"--address {address!r}: no Ray cluster answers ({error}; expected a head started with `ray start --head`)"
        ) from None


@dataclass(frozen=True)
class Workers:
    use_gpus: bool  # one actor per GPU; else CPU actors
    count: int  # actors
    encode_processes: int  # per actor; 0: one encoder thread

    @property
    def device(self) -> str:
        return "cuda" if self.use_gpus else "cpu"


def plan_workers(ray, options: SynthesisOptions) -> Workers:
    """The job's actors, checked against what the cluster has."""
    resources = ray.cluster_resources()
    visible_gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    if options.gpus and not visible_gpus:
        where = "here" if options.address is None else f"on the Ray cluster at {options.address}"
        raise GenaugError(
            f"--gpus {options.gpus}: no CUDA device is visible {where} (expected --gpus 0, and --workers N for "
            "N CPU workers)"
        )
    if options.gpus is not None and options.gpus > visible_gpus:
        raise GenaugError(
            f"--gpus {options.gpus}: only {visible_gpus} GPU{'s' if visible_gpus != 1 else ''} visible "
            f"(expected --gpus {visible_gpus} or fewer; --gpus 0 --workers N runs on CPUs)"
        )
    gpus = options.gpus if options.gpus is not None else (0 if options.workers is not None else visible_gpus)
    if gpus:
        # A GPU outruns one encoder many times over: give it the node's cores.
        processes = options.encode_processes
        return Workers(True, gpus, max(0, cpus // gpus - 1) if processes is None else processes)
    workers = options.workers if options.workers is not None else max(1, cpus)
    if workers > cpus:
        raise GenaugError(f"--workers {workers}: the Ray cluster has {cpus} CPUs (expected --workers {cpus} or fewer)")
    return Workers(False, workers, options.encode_processes or 0)
