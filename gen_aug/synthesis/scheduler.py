"""Hands shards to Ray actors as they free up, records each finished one, and gives a lost actor's shards to the others."""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass

from gen_aug.errors import GenaugError
from gen_aug.output.manifest import done_file, write_json
from gen_aug.synthesis.options import WORKER_START_TIMEOUT_S
from gen_aug.output.records import ShardRecord
from gen_aug.synthesis.session import Workers
from gen_aug.output.settings import JobSettings
from gen_aug.synthesis.shard_bar import ShardBar
from gen_aug.output.storage import Location
from gen_aug.synthesis.variant_job import VariantSources
from gen_aug.synthesis.worker import ShardWorker

# A shard still out after ten times the job's median time from hand-out to record (and at least the floor)
# is taken to be hung: its worker is killed and its shards go to the others, as for a lost worker.
HUNG_SHARD_FACTOR = 10
HUNG_SHARD_FLOOR_S = 20.0
# Before it is killed, an overdue worker is asked to describe itself: one that answers (restarting its
# encoders, or slowed by a loaded machine) is working and gets another deadline; a stopped or wedged
# process does not answer in this long.
PING_TIMEOUT_S = 10.0
# Workers start together but load the snapshot at their own pace: for this long after the first one joins,
# each takes at most its even share of the shards, so a small job does not all go to the first one ready.
# After it, whoever is there takes everything left.
JOIN_GRACE_S = 30.0
WAIT_POLL_S = 1.0
# One torch thread per CPU worker: workers scale across cores with no shared thread pool to contend
# for, and a shard's bytes never depend on how many threads computed it.
TORCH_THREADS_PER_CPU_WORKER = 1


@dataclass(frozen=True)
class ShardJob:
    """Everything the actors of one job start from."""

    settings: JobSettings
    workers: Workers
    snapshot: bytes  # the snapshot file's bytes: they travel through Ray's object store, so nodes need no copy
    location: Location  # the output, which actors write to themselves
    classifier_weights: bytes | None = None  # the judge of a --min-confidence job
    progress: bool = True
    start_timeout_s: float = WORKER_START_TIMEOUT_S  # the job fails if no worker has started by then
    variant_sources: VariantSources | None = None  # a --variants-of job's real images, sent once like the snapshot


@dataclass
class ShardRun:
    records: dict[int, ShardRecord]  # by shard index, the kept ones included
    workers: list[dict]  # each actor's description, when it joined, images written, peak memory, or why it was lost
    shard_seconds: float = 0.0  # from the first shard handed out to the last one written


def run_shards(ray, job: ShardJob, kept: dict[int, ShardRecord]) -> ShardRun:
    """Write every shard not in `kept`; a driver interrupt is a GenaugError that says how to resume.

    Shards go to each worker as soon as it has loaded the snapshot: the job starts with the first
    worker ready and takes on the others whenever the cluster starts them.
    """
    from tqdm import tqdm

    plan = job.settings.plan
    run = ShardRun(dict(kept), [{"worker": i, "joined_s": None, "images": 0} for i in range(job.workers.count)])
    actors = _start_actors(ray, job)
    # smoothing=0: the bar's rate is an average over the whole run, as the manifest's is, and its ETA holds
    # steady rather than swinging with each shard that lands.
    bar = tqdm(total=plan.n, initial=sum(r.rows for r in kept.values()), unit="img", unit_scale=True,
               desc="synthesize", disable=not job.progress, smoothing=0)
    try:
        scheduler = _Scheduler(ray, actors, job, run, bar)
        alive = scheduler.hand_out()
        run.shard_seconds = scheduler.shard_seconds()
        for worker, stats in zip(alive, ray.get([actors[w].final_stats.remote() for w in alive])):
            run.workers[worker].update(stats)
        ray.get([actors[w].close.remote() for w in alive])  # encoder processes end and free their memory
        scheduler.say_unstarted()
        return run
    except KeyboardInterrupt:
        raise GenaugError(
            f"interrupted: {len(run.records)} of {plan.num_shards} shards finished and kept "
            f"(rerun the same command with --resume to write the rest)"
        ) from None
    finally:
        bar.close()
        for actor in actors:
            ray.kill(actor)


def _start_actors(ray, job: ShardJob) -> list:
    workers = job.workers
    snapshot_ref = ray.put(job.snapshot)
    classifier_ref = ray.put(job.classifier_weights) if job.classifier_weights is not None else None
    sources_ref = ray.put(job.variant_sources) if job.variant_sources is not None else None
    actor_class = ray.remote(ShardWorker)
    token = os.urandom(4).hex()  # names tell this job's actors apart on a shared cluster
    # Concurrency: the shards in flight (encoders + 1), and one more, so a worker busy with all of them still
    # answers the driver's pings and questions.
    return [
        actor_class.options(
            name=f"genaug-{token}-worker-{i}", num_gpus=1 if workers.use_gpus else 0,
            num_cpus=0 if workers.use_gpus else 1, max_restarts=0, max_task_retries=0,
            max_concurrency=max(1, workers.encode_processes) + 2,
        ).remote(snapshot_ref, job.settings, job.location.uri, workers.encode_processes,
                 TORCH_THREADS_PER_CPU_WORKER, classifier_ref, sources_ref)
        for i in range(workers.count)
    ]


class _Scheduler:
    """Keeps every joined actor as busy as it can be until every shard is recorded, and takes on late ones."""

    def __init__(self, ray, actors: list, job: ShardJob, run: ShardRun, bar):
        self.ray, self.actors, self.job, self.run, self.bar = ray, actors, job, run, bar
        self.pending = deque(s.shard_idx for s in job.settings.plan.shards() if s.shard_idx not in run.records)
        self.created = time.monotonic()
        self.without_workers_since = self.created  # when the job last had no worker to give a shard to
        self.first_joined: float | None = None
        self.joining = {actor.describe.remote(): i for i, actor in enumerate(actors)}  # describe ref -> worker
        self.alive: set[int] = set()
        self.in_flight: dict = {}  # task ref -> (worker, shard_idx, hand-out time)
        self.seconds_per_shard: list[float] = []
        self.even_share = math.ceil(len(self.pending) / max(1, len(actors)))
        self.handed = [0] * len(actors)  # shards handed to each worker
        self.answered: dict[int, float] = {}  # worker -> when it last answered a ping
        self.pings: dict[int, tuple] = {}  # worker -> (describe ref, sent at) not answered yet
        self.shown = ShardBar(ray, bar)

    def hand_out(self) -> list[int]:
        """Run until no shard is pending or out; returns the workers that joined and are still alive."""
        ray = self.ray
        while self.pending or self.in_flight:
            self._fill()
            ready, _ = ray.wait([*self.in_flight, *self.joining], num_returns=1, timeout=WAIT_POLL_S)
            if not ready:
                self._check_start()
                self._kill_hung()
                self.shown.ask({w: self.actors[w] for w, _, _ in self.in_flight.values() if w in self.alive})
                continue
            if ready[0] in self.joining:
                self._join(ready[0])
                continue
            worker, shard_idx, handed_out = self.in_flight.pop(ready[0])
            try:
                record = ray.get(ready[0])
            except _lost_worker_errors(ray) as error:
                self.pending.appendleft(shard_idx)
                self._lose(worker, type(error).__name__)
                continue
            except ray.exceptions.RayTaskError as error:
                raise _task_error(error, shard_idx) from None
            self.seconds_per_shard.append(time.monotonic() - handed_out)
            _record(self.job, self.run, worker, record)
            self.shown.landed(worker, record, self.run.records.values())
        return sorted(self.alive)

    def shard_seconds(self) -> float:
        return 0.0 if self.first_joined is None else time.monotonic() - self.first_joined

    def say_unstarted(self) -> None:
        """A line and a manifest entry for each worker the cluster did not start while the job ran."""
        waited = time.monotonic() - self.created
        needs = "1 GPU" if self.job.workers.use_gpus else "1 CPU"
        if not any(self.handed):
            return  # a resumed job with every shard kept needed no worker
        for worker in sorted(self.joining.values()):
            self.run.workers[worker]["lost"] = f"never started: waited {waited:.0f} s for {needs}"
            self.bar.write(f"worker {worker} never started in the job's {waited:.0f} s (it needs {needs}; the cluster "
                           f"has {_resources(self.ray)}); the {len(self.alive)} others wrote every shard",
                           file=sys.stderr)

    def _fill(self) -> None:
        waiting_for_others = bool(self.joining) and self.first_joined is not None and \
            time.monotonic() - self.first_joined < JOIN_GRACE_S
        while self.pending:
            busy = [w for w, _, _ in self.in_flight.values()]
            open_workers = [w for w in self.alive if busy.count(w) < self.run.workers[w]["shards_in_flight"] and not (
                waiting_for_others and self.handed[w] >= self.even_share)]
            if not open_workers:
                break
            # One shard at a time to the worker handed fewest so far: one that joins a moment late is not left with
            # nothing while the first one ready takes every shard still pending.
            worker = min(open_workers, key=lambda w: (self.handed[w], w))
            shard_idx = self.pending.popleft()
            task = self.actors[worker].run_shard.remote(shard_idx)
            self.in_flight[task] = (worker, shard_idx, time.monotonic())
            self.handed[worker] += 1

    def _join(self, ref) -> None:
        """A worker has loaded the snapshot and takes shards from now on; or it failed to start."""
        worker = self.joining.pop(ref)
        try:
            info = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as error:
            if getattr(error, "actor_init_failed", False):  # its code failed, as every worker's would
                raise GenaugError(f"workers: one failed to start ({str(error).splitlines()[0]})") from None
            self._lose(worker, f"lost while starting: {type(error).__name__}")
            return
        now = time.monotonic()
        if self.first_joined is None:
            self.first_joined = now
            self.bar.unpause()  # the bar's clock starts with the first shard, as the manifest's shard time does
        self.run.workers[worker].update(info, joined_s=round(now - self.created, 3))
        self.alive.add(worker)

    def _check_start(self) -> None:
        """Fail once no worker has been there for the start timeout; while one works, others may start any time."""
        waited = time.monotonic() - self.without_workers_since
        if self.alive or waited <= self.job.start_timeout_s:
            return
        what = "none of" if self.first_joined is None else "every worker was lost and none of the other"
        raise GenaugError(
            f"workers: {what} {len(self.joining)} started within {waited:.0f} s (cluster has {_resources(self.ray)}; "
            f"expected a free {'GPU' if self.job.workers.use_gpus else 'CPU'} for one worker at least, or a longer "
            f"--worker-start-timeout; {len(self.run.records)} of {self.job.settings.plan.num_shards} shards are "
            "finished and kept)"
        )

    def _kill_hung(self) -> None:
        """Kill workers whose shard is out far longer than shards take and that do not answer; their tasks then fail
        as a lost worker's do."""
        if not self.seconds_per_shard:
            return  # nothing measured yet
        deadline = max(HUNG_SHARD_FLOOR_S, HUNG_SHARD_FACTOR * statistics.median(self.seconds_per_shard))
        now = time.monotonic()
        overdue = {w for w, _, out_since in self.in_flight.values()
                   if w in self.alive and now - max(out_since, self.answered.get(w, 0.0)) > deadline}
        for worker in sorted(overdue):
            ping, sent = self.pings.setdefault(worker, (self.actors[worker].describe.remote(), now))
            answered, _ = self.ray.wait([ping], timeout=0)
            if answered:
                del self.pings[worker]
                self.answered[worker] = now
            elif now - sent > PING_TIMEOUT_S:
                self.ray.kill(self.actors[worker])
                self._lose(worker, f"hung: a shard out for over {deadline:.0f} s and no answer in {PING_TIMEOUT_S:.0f} s")

    def _lose(self, worker: int, why: str) -> None:
        """Take `worker` out of the job; fail it once no worker is left and none is still starting."""
        entry = self.run.workers[worker]
        if "lost" not in entry:
            self.alive.discard(worker)
            entry["lost"] = why
            where = f" on {entry['node_ip']}" if "node_ip" in entry else ""
            self.bar.write(f"worker {worker}{where} lost ({why}); its shards go to the {len(self.alive)} others",
                           file=sys.stderr)
            if not self.alive:
                self.without_workers_since = time.monotonic()
        if not self.alive and not self.joining:
            raise GenaugError(
                f"every worker was lost; {len(self.run.records)} of {self.job.settings.plan.num_shards} shards are "
                "finished and kept (rerun the same command with --resume once workers are available)"
            ) from None


def _resources(ray) -> str:
    """'CPU 0 of 4 free, GPU 0 of 2 free': what a worker waits for."""
    total, free = ray.cluster_resources(), ray.available_resources()
    return ", ".join(f"{name} {free.get(name, 0):g} of {total.get(name, 0):g} free" for name in ("CPU", "GPU"))


def _record(job: ShardJob, run: ShardRun, worker: int, record: ShardRecord) -> None:
    try:
        write_json(job.location, done_file(record.shard_idx), record.to_dict())
    except OSError as error:
        raise GenaugError(
            f"--out {job.location.uri!r}: cannot record shard {record.shard_idx} ({error}; {len(run.records)} "
            "finished shards are kept: make room and rerun the same command with --resume)"
        ) from None
    run.records[record.shard_idx] = record
    run.workers[worker]["images"] += record.rows


def _lost_worker_errors(ray) -> tuple[type, ...]:
    """What a task raises when its actor, worker process or node is gone rather than when its code failed."""
    errors = ray.exceptions
    return (errors.RayActorError, errors.NodeDiedError, errors.WorkerCrashedError, errors.ObjectLostError)


def _task_error(error, shard_idx: int) -> Exception:
    cause = getattr(error, "cause", None)
    if isinstance(cause, GenaugError):
        return type(cause)(str(cause))  # its own kind: the driver adds what only it knows, such as the --model
    if isinstance(cause, OSError):
        return GenaugError(
            f"shard {shard_idx}: writing failed ({cause}; expected a writable --out on storage every node can reach)"
        )
    return error
