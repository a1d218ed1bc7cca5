"""The Ray this job runs on: a private one on this machine, or a cluster joined by address; and how many workers fit."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from gen_aug.errors import GenaugError
from gen_aug.synthesis.options import SynthesisOptions, no_gpus_error
from gen_aug.synthesis.reaper import reaper

ADDRESS_TIMEOUT_S = 5
AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


class ray_session:
    """ray.init for this job (unless the caller already did) and ray.shutdown after it.

    A private Ray gets a token of its own, made for this job and kept in this process's environment,
    which only its own processes inherit and only this user can read; Ray would otherwise use (and
    write) the shared ~/.ray/auth_token. A watcher kills its processes should this one be killed.
    """

    def __init__(self, address: str | None):
        self.address = address
        self.started = False
        self.stack = contextlib.ExitStack()

    def __enter__(self):
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        if self.address is not None:
            _check_reachable(self.address)
        if ray.is_initialized():
            return ray
        try:
            if self.address is None:
                self.stack.enter_context(reaper())
                self.stack.enter_context(_private_token())
                # 'local' starts a private instance even where `ray start` left a cluster to join by default.
                # Ray says it turned token authentication on in a warning line on every run: keep quiet.
                logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
                with _loopback_only():
                    ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)
            else:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as error:
            self._abandon(ray)
            if self.address is None:
                raise GenaugError(f"cannot start a local Ray for the job ({error})") from None
            raise GenaugError(f"--address {self.address!r}: cannot join the Ray cluster ({error})") from None
        except BaseException:
            self._abandon(ray)
            raise
        self.started = True
        return ray

    def _abandon(self, ray) -> None:
        """After a failed or interrupted ray.init: stop whatever of Ray it started, then the token and watcher."""
        try:
            ray.shutdown()
        finally:
            self.stack.close()

    def __exit__(self, *exc_info):
        if self.started:
            import ray

            try:
                ray.shutdown()
            finally:
                self.stack.close()


@contextlib.contextmanager
def _private_token():
    """RAY_AUTH_MODE=token with a fresh RAY_AUTH_TOKEN for the block; the user's own settings after it."""
    from ray._raylet import AuthenticationTokenLoader, Config

    saved = {name: os.environ.get(name) for name in AUTH_VARIABLES}
    try:
        os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
        # Ray reads its mode and token once and caches them: read again, now and after.
        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


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
        raise no_gpus_error(options)
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
    if cpus < 1:  # no worker could ever start: fail now rather than after the start timeout
        raise GenaugError(
            f"workers: the Ray cluster{'' if options.address is None else ' at ' + options.address} has no CPUs "
            "(expected a node with 1 CPU or more for each CPU worker)"
        )
    workers = options.workers if options.workers is not None else cpus
    if workers > cpus:
        raise GenaugError(f"--workers {workers}: the Ray cluster has {cpus} CPUs (expected --workers {cpus} or fewer)")
    return Workers(False, workers, options.encode_processes or 0)
