"""Synthesis on Ray, the only module that imports ray: one actor per GPU (or N CPU actors) fed shards from a queue.

The driver checks every input before it writes anything, hands shards to actors one at a time
as they finish (so a dead actor's or node's shards go to the survivors), records each finished
shard, and writes the manifest last. Actors write shards straight to the output location.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import socket
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gen_aug.errors import GenaugError
from gen_aug.synthesis.manifest import (
    DONE_DIR,
    JOB_FILE,
    MANIFEST,
    STATE_DIR,
    build_manifest,
    done_file,
    finished_records,
    previous_settings,
    write_json,
)
from gen_aug.synthesis.plan import Plan, make_plan, parse_count
from gen_aug.sampling import GENERATION_CHUNK, generate_uint8
from gen_aug.synthesis.formats import FORMATS, write_shard_in_encoder
from gen_aug.synthesis.storage import Location, open_location

if TYPE_CHECKING:
    from gen_aug.evaluation.classifier import ClassifierConfig

# A worker generates one shard at a time while up to `encoders` earlier shards encode and write:
# the generator is never idle waiting for PNG encoding, and memory holds at most encoders + 1 shards.
WORKER_START_TIMEOUT_S = 120
# One torch thread per CPU worker: workers scale across cores with no shared thread pool to contend
# for, and a shard's bytes never depend on how many threads computed it.
TORCH_THREADS_PER_CPU_WORKER = 1
STAGING_SHARDS = 2
ADDRESS_TIMEOUT_S = 5


@dataclass(frozen=True)
class SynthesisOptions:
    model: str  # snapshot path
    out: str  # output folder or URI
    n: str | int | None = None  # total images ('1e6' accepted); None when per_class gives the counts
    per_class: str | None = None  # 'K' or 'CLASS=K,...'
    class_weights: str | None = None  # 'balance' or 'CLASS=W,...'
    classes: str | None = None  # 'CLASS,...'
    data: str | None = None  # real set spec: its class counts for class_weights='balance'
    shard_size: int = 10_000  # images per shard
    seed: int = 0
    gpus: int | None = None  # GPU actors; None: every visible GPU, or CPU actors when there is none
    workers: int | None = None  # CPU actors (implies no GPUs); None: one per CPU
    encode_processes: int | None = None  # per worker; 0: one encoder thread; None: the node's CPUs per GPU - 1, 0 on CPU
    image_format: str = "parquet"
    address: str | None = None  # None: a private local Ray; 'auto', 'HOST:PORT' or 'ray://HOST:PORT'
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    min_confidence: float | None = None  # keep images the reference classifier (on data's train split) is this sure of
    classifier: ClassifierConfig | None = None  # that classifier's config; None: ClassifierConfig()


class ShardWorker:
    """A Ray actor: loads the snapshot once, then generates whole shards and hands each to an encoder to write.

    Run with max_concurrency = encoders + 1: one call generates (under a lock, since the generator is
    the shared resource) while the others wait on their shard's encoding in a thread or a process pool.
    """

    def __init__(self, snapshot_bytes: bytes, settings: dict, out_uri: str, encode_processes: int, torch_threads: int,
                 classifier_weights: bytes | None = None):
        import threading

        import torch

        from gen_aug.checkpoint import load_snapshot

        use_cuda = settings["device"] == "cuda" and torch.cuda.is_available()
        self.device = torch.device("cuda" if use_cuda else "cpu")
        if not use_cuda:
            torch.set_num_threads(torch_threads)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.safetensors")
            with open(path, "wb") as stream:
                stream.write(snapshot_bytes)
            self.model = load_snapshot(path, device=self.device).model
        self.filter = settings.get("filter")  # None: unfiltered, every image from its own index
        if self.filter is not None:
            from gen_aug.evaluation.classifier import load_classifier

            self.judge = load_classifier(classifier_weights, self.filter["classifier"], self.device)
        self.plan = Plan.from_dict(settings["plan"])
        self.plan_json = json.dumps(settings["plan"], sort_keys=True)
        self.image_format = settings["format"]
        self.out_uri = out_uri
        self.generating = threading.Lock()
        self.slots = None  # shared-memory hand-off to encoder processes, when they are used and fit
        self.staging = queue.SimpleQueue()  # with slots: where the generator writes shards before they go to one
        if encode_processes:
            self.encoders = self._start_encoder_processes(encode_processes)
        else:
            self.encoders = ThreadPoolExecutor(1)  # Pillow's zlib and torch release the GIL, so the two overlap
        if use_cuda:  # load kernels and pick algorithms now, not while the first shard is timed
            chunk = GENERATION_CHUNK["cuda"]
            generate_uint8(self.model, 0, torch.arange(chunk), torch.arange(chunk) % self.model.config.num_classes,
                           self.device)
        self.info = {
            "node_ip": _node_ip(),
            "pid": os.getpid(),
            "device": str(self.device),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "torch_threads": torch.get_num_threads(),
            "encoders": f"{encode_processes} process{'es' if encode_processes > 1 else ''}" if encode_processes
                        else "1 thread",
            "handoff": "shared memory" if self.slots is not None else "pipe" if encode_processes else "in process",
            "shards_in_flight": max(1, encode_processes) + 1,
        }

    def _start_encoder_processes(self, count: int) -> ProcessPoolExecutor:
        """`count` encoder processes, started and with their imports done, mapping the shard slots where they fit."""
        import multiprocessing

        import torch

        from gen_aug.synthesis.handoff import ShardSlots, attach_slots, load_encoder_modules, slots_fit

        config = self.model.config
        slot_shape = (self.plan.shard_size, config.channels, config.resolution, config.resolution)
        # spawn, not fork: forking a process that runs Ray's and torch's threads can deadlock the child.
        context = multiprocessing.get_context("spawn")
        setup = {}
        if slots_fit(count + 1, slot_shape):  # one slot per shard in flight
            self.slots = ShardSlots(count + 1, slot_shape)
            attached = context.Semaphore(0)
            setup = {"initializer": attach_slots, "initargs": (self.slots.names, slot_shape, attached)}
            # Shards for the generator to fill (pinned on CUDA, where they take asynchronous copies) and then copy
            # to a slot. Two, so that one is copied out while the generator fills the other.
            for _ in range(STAGING_SHARDS):
                self.staging.put(torch.empty(slot_shape, dtype=torch.uint8, pin_memory=self.device.type == "cuda"))
        encoders = ProcessPoolExecutor(count, mp_context=context, **setup)
        # Each submit finds no idle process and starts one, so all `count` start now rather than during the job.
        started = [encoders.submit(load_encoder_modules) for _ in range(count)]
        if self.slots is not None:
            deadline, mapped = time.monotonic() + WORKER_START_TIMEOUT_S, 0
            while mapped < count:
                if attached.acquire(timeout=0.1):
                    mapped += 1
                elif time.monotonic() > deadline or any(job.done() and job.exception() for job in started):
                    raise GenaugError(f"encoders: {mapped} of {count} mapped the shard slots in "
                                      f"{WORKER_START_TIMEOUT_S} s (expected every encoder process to start)")
            self.slots.unlink()
        for job in started:
            job.result(timeout=WORKER_START_TIMEOUT_S)
        return encoders

    def describe(self) -> dict:
        return self.info

    def peak_rss_bytes(self) -> int:
        """This actor's peak resident memory (encoder processes not included)."""
        return _peak_rss_bytes()

    def close(self) -> None:
        """Stop the encoders and free the slots; the driver calls this before it kills a worker that finished."""
        self.encoders.shutdown(wait=True, cancel_futures=True)
        self.encoders = None  # dropping the pool finalizes its semaphores, which a killed process would leave behind
        if self.slots is not None:
            self.slots.close()

    def run_shard(self, shard_idx: int) -> dict:
        """Generate one shard, then encode and write it in an encoder; returns its manifest record."""
        import torch

        from gen_aug.synthesis.handoff import borrowed, write_slot_shard

        shard = self.plan.shard(shard_idx)
        if self.slots is None:
            # uint8 images in host memory; pinned on CUDA so the copies run asynchronously.
            config = self.model.config
            images = torch.empty((shard.rows, config.channels, config.resolution, config.resolution),
                                 dtype=torch.uint8, pin_memory=self.device.type == "cuda")
            with self.generating:
                latent_indices, candidates = self._generate(shard, images)
            job = self.encoders.submit(write_shard_in_encoder, self.out_uri, self.plan_json, shard_idx,
                                       images.numpy(), self.image_format, latent_indices)
            record = job.result()
        else:
            # Neither waits: at most as many shards are in flight as there are slots, and staging shards go back
            # as soon as their copy is done.
            with borrowed(self.slots.free) as slot:
                with borrowed(self.staging) as staging:
                    with self.generating:
                        latent_indices, candidates = self._generate(shard, staging[: shard.rows])
                    torch.from_numpy(self.slots.images(slot, shard.rows)).copy_(staging[: shard.rows])
                job = self.encoders.submit(write_slot_shard, self.out_uri, self.plan_json, shard_idx, slot,
                                           shard.rows, self.image_format, latent_indices)
                record = job.result()
        if candidates is not None:
            record["candidates"] = candidates  # per class, for the manifest's acceptance rates
        return record

    def _generate(self, shard, out) -> tuple:
        """Fill `out` with the shard's images; (latent index of each, candidates per class), both None unfiltered."""
        import torch

        if self.filter is None:
            labels = torch.from_numpy(self.plan.labels(shard.start, shard.stop))
            generate_uint8(self.model, self.plan.seed, torch.arange(shard.start, shard.stop), labels, self.device,
                           out=out)
            return None, None
        from gen_aug.synthesis.filter import generate_confident

        return generate_confident(self.model, self.judge, self.plan, shard, self.filter["min_confidence"],
                                  self.device, out)


def _node_ip() -> str:
    import ray

    return ray.util.get_node_ip_address()


def synthesize(options: SynthesisOptions) -> dict:
    """Run a whole synthesis job; returns the manifest it wrote. Every bad input raises GenaugError before any write."""
    from gen_aug.checkpoint import load_snapshot

    started = time.time()
    if options.image_format not in FORMATS:
        raise GenaugError(f"--format {options.image_format!r}: unknown (expected one of {', '.join(FORMATS)})")
    if options.resume and options.overwrite:
        raise GenaugError("--resume and --overwrite: both given (expected at most one)")
    if options.gpus and options.workers is not None:
        raise GenaugError(
            f"--workers {options.workers} with --gpus {options.gpus}: GPU jobs run one worker per GPU "
            "(expected --gpus 0 for CPU workers)"
        )
    snapshot = load_snapshot(options.model)
    plan = job_plan(options, tuple(snapshot.meta["class_names"]))
    filter_record, classifier_weights = None, None
    if options.min_confidence is not None:
        from gen_aug.synthesis.filter import filter_settings

        filter_record, classifier_weights = filter_settings(
            options.data, options.min_confidence, options.classifier, snapshot.meta
        )
    location = open_location(options.out)
    _check_output(location, options)
    with _ray_session(options.address) as ray:
        use_gpus, num_workers = _worker_count(ray, options)
        settings = {
            "plan": plan.to_dict(),
            "format": options.image_format,
            "snapshot_sha256": snapshot.sha256,
            # CPU and GPU kernels round differently, so a job's images are tied to the kind of device and
            # to the fixed number of images per generator call (see sampling.GENERATION_CHUNK).
            "device": "cuda" if use_gpus else "cpu",
            "generation_chunk": GENERATION_CHUNK["cuda" if use_gpus else "cpu"],
            "filter": filter_record,
        }
        kept = _prepare_output(location, options, settings, plan)
        records, workers, shard_seconds = _run_shards(
            ray, options, settings, location, plan, kept, use_gpus, num_workers, classifier_weights
        )
    finished = time.time()
    written = plan.n - sum(r["rows"] for r in kept.values())
    timing = {
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "seconds": round(finished - started, 3),  # all of it: checks, Ray start, snapshot loads, shards
        "shard_seconds": round(shard_seconds, 3),  # from the first shard handed out to the last one written
        "images_written": written,
        "images_resumed": plan.n - written,
        "images_per_sec": round(written / max(shard_seconds, 1e-9), 1),
        "driver_peak_rss_bytes": _peak_rss_bytes(),
    }
    snapshot_record = {"path": os.path.abspath(options.model), "sha256": snapshot.sha256, "meta": snapshot.meta}
    manifest = build_manifest(settings, snapshot_record, list(records.values()), timing, workers)
    if filter_record is not None:
        from gen_aug.synthesis.filter import acceptance

        manifest["acceptance"] = acceptance(list(records.values()), list(plan.class_names))
    write_json(location, MANIFEST, manifest)
    location.delete_dir(STATE_DIR)
    location.sweep_temporaries()
    return manifest


def job_plan(options: SynthesisOptions, class_names: tuple[str, ...]) -> Plan:
    """The plan these options make for a snapshot with `class_names`."""
    real_counts = None
    if options.data is not None:
        from gen_aug.data import load_data

        real = load_data(options.data)
        if real.class_names != class_names:
            raise GenaugError(
                f"--data {options.data!r}: classes {', '.join(real.class_names)} differ from the snapshot's "
                f"(expected {', '.join(class_names)})"
            )
        real_counts = real.class_counts().tolist()
    n = parse_count(options.n) if isinstance(options.n, str) else options.n
    return make_plan(
        class_names, n=n, per_class=options.per_class, class_weights=options.class_weights,
        classes=options.classes, real_counts=real_counts, shard_size=options.shard_size, seed=options.seed,
    )


def _check_output(location: Location, options: SynthesisOptions) -> None:
    """Refuse, before anything is written, an output that this run must not touch."""
    if location.is_empty():
        return
    ours = previous_settings(location) is not None
    if options.resume or options.overwrite:
        if not ours:
            raise GenaugError(
                f"--out {options.out!r}: holds files genaug did not write (expected an empty folder or a genaug output)"
            )
        return
    raise GenaugError(
        f"--out {options.out!r}: not empty (expected a new or empty folder; --resume continues the job there, "
        "--overwrite replaces it)"
    )


def _prepare_output(location: Location, options: SynthesisOptions, settings: dict, plan: Plan) -> dict[int, dict]:
    """Write the job's state; with --resume, keep the shards that still hash as recorded. Returns those."""
    kept: dict[int, dict] = {}
    try:
        if options.overwrite and not location.is_empty():
            location.fs.delete_dir_contents(location.root)
            location.made_dirs.clear()
        if options.resume and not location.is_empty():
            previous = previous_settings(location)
            changed = [key for key in settings if previous.get(key, settings[key]) != settings[key]]
            if changed:
                raise GenaugError(
                    f"--resume {options.out!r}: the job there had other {', '.join(changed)} "
                    "(expected the same model, plan, format, batch size and device; or use --overwrite)"
                )
            location.sweep_temporaries()
            kept = finished_records(location, plan, options.image_format)
        write_json(location, JOB_FILE, settings)
        for record in kept.values():
            write_json(location, done_file(record["shard_idx"]), record)
        if location.exists(MANIFEST):  # a manifest must never outlive the shards it vouches for
            location.delete(MANIFEST)
    except OSError as error:
        raise GenaugError(f"--out {options.out!r}: cannot write ({error}; expected a writable folder)") from None
    return kept


class _ray_session:
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


def _worker_count(ray, options: SynthesisOptions) -> tuple[bool, int]:
    """(use GPUs, number of actors), checked against what the cluster has."""
    resources = ray.cluster_resources()
    visible_gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    if options.gpus is not None and options.gpus > visible_gpus:
        raise GenaugError(
            f"--gpus {options.gpus}: only {visible_gpus} GPU{'s' if visible_gpus != 1 else ''} visible "
            f"(expected --gpus {visible_gpus} or fewer; --gpus 0 --workers N runs on CPUs)"
        )
    gpus = options.gpus if options.gpus is not None else (0 if options.workers is not None else visible_gpus)
    if gpus:
        return True, gpus
    workers = options.workers if options.workers is not None else max(1, cpus)
    if workers > cpus:
        raise GenaugError(f"--workers {workers}: the Ray cluster has {cpus} CPUs (expected --workers {cpus} or fewer)")
    return False, workers


def _run_shards(ray, options, settings, location, plan, kept, use_gpus, num_workers, classifier_weights):
    """Hand shards to actors as they free up; a lost actor's shards go back in the queue.

    Returns (records by shard, worker descriptions, seconds spent on shards).
    """""
    from tqdm import tqdm

    records = dict(kept)
    pending = deque(s.shard_idx for s in plan.shards() if s.shard_idx not in kept)
    encode_processes = options.encode_processes
    if encode_processes is None:  # a GPU outruns one encoder many times over: give it the node's cores
        encode_processes = max(0, int(ray.cluster_resources().get("CPU", 1)) // num_workers - 1) if use_gpus else 0
    snapshot_ref = ray.put(Path(options.model).read_bytes())  # nodes need no shared copy of the model
    classifier_ref = ray.put(classifier_weights) if classifier_weights is not None else None
    actor_class = ray.remote(ShardWorker)
    token = os.urandom(4).hex()  # names tell this job's actors apart on a shared cluster
    actors = [
        actor_class.options(
            name=f"genaug-{token}-worker-{i}", num_gpus=1 if use_gpus else 0, num_cpus=0 if use_gpus else 1,
            max_restarts=0, max_task_retries=0, max_concurrency=max(1, encode_processes) + 1,
        ).remote(snapshot_ref, settings, location.uri, encode_processes, TORCH_THREADS_PER_CPU_WORKER, classifier_ref)
        for i in range(num_workers)
    ]
    bar = tqdm(total=plan.n, initial=sum(r["rows"] for r in kept.values()), unit="img", unit_scale=True,
               desc="synthesize", disable=not options.progress, smoothing=0.1)
    try:
        workers = _start(ray, actors)
        shards_started = time.time()
        alive = set(range(num_workers))
        in_flight: dict = {}  # task ref -> (worker, shard_idx)
        while pending or in_flight:
            for worker in sorted(alive):
                limit = workers[worker]["shards_in_flight"]
                while pending and sum(w == worker for w, _ in in_flight.values()) < limit:
                    shard_idx = pending.popleft()
                    in_flight[actors[worker].run_shard.remote(shard_idx)] = (worker, shard_idx)
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            worker, shard_idx = in_flight.pop(ref)
            try:
                record = ray.get(ref)
            except _lost_worker_errors(ray) as error:
                pending.appendleft(shard_idx)
                if worker in alive:
                    alive.discard(worker)
                    workers[worker]["lost"] = type(error).__name__
                    bar.write(f"worker {worker} on {workers[worker]['node_ip']} lost ({type(error).__name__}); "
                              f"its shards go to the {len(alive)} others", file=sys.stderr)
                if not alive:
                    raise GenaugError(
                        f"every worker was lost; {len(records)} of {plan.num_shards} shards are finished and kept "
                        "(rerun the same command with --resume once workers are available)"
                    ) from None
                continue
            except ray.exceptions.RayTaskError as error:
                raise _task_error(error, shard_idx) from None
            write_json(location, done_file(shard_idx), record)
            records[shard_idx] = record
            workers[worker]["images"] += record["rows"]
            bar.update(record["rows"])
        shard_seconds = time.time() - shards_started
        survivors = sorted(alive)
        for worker, peak in zip(survivors, ray.get([actors[w].peak_rss_bytes.remote() for w in survivors])):
            workers[worker]["peak_rss_bytes"] = peak
        ray.get([actors[w].close.remote() for w in survivors])  # encoder processes end and free their memory
        return records, workers, shard_seconds
    except KeyboardInterrupt:
        raise GenaugError(
            f"interrupted: {len(records)} of {plan.num_shards} shards finished and kept "
            f"(rerun the same command with --resume to write the rest)"
        ) from None
    finally:
        bar.close()
        for actor in actors:
            ray.kill(actor)


def _lost_worker_errors(ray) -> tuple[type, ...]:
    """What a task raises when its actor, worker process or node is gone rather than when its code failed."""
    errors = ray.exceptions
    return (errors.RayActorError, errors.NodeDiedError, errors.WorkerCrashedError, errors.ObjectLostError)


def _task_error(error, shard_idx: int) -> Exception:
    cause = getattr(error, "cause", None)
    if isinstance(cause, GenaugError):
        return GenaugError(str(cause))
    if isinstance(cause, OSError):
        return GenaugError(
            f"shard {shard_idx}: writing failed ({cause}; expected a writable --out on storage every node can reach)"
        )
    return error


def _start(ray, actors) -> list[dict]:
    """Wait for every actor to load the snapshot; their descriptions (node, device, CUDA_VISIBLE_DEVICES)."""
    try:
        infos = ray.get([actor.describe.remote() for actor in actors], timeout=WORKER_START_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError:
        raise GenaugError(
            f"workers: not all {len(actors)} started within {WORKER_START_TIMEOUT_S} s "
            f"(cluster has {ray.cluster_resources()}; expected free CPUs or GPUs for every worker)"
        ) from None
    except ray.exceptions.RayActorError as error:
        raise GenaugError(f"workers: one failed to start ({str(error).splitlines()[0]})") from None
    return [{"worker": i, **info, "images": 0} for i, info in enumerate(infos)]


def _peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")
