"""Hands shards to Ray actors as they free up, records each finished one, and gives a lost actor's shards to the others."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass

from gen_aug.errors import GenaugError
from gen_aug.synthesis.manifest import done_file, write_json
from gen_aug.synthesis.records import ShardRecord
from gen_aug.synthesis.session import Workers
from gen_aug.synthesis.settings import JobSettings
from gen_aug.synthesis.storage import Location
from gen_aug.synthesis.worker import ShardWorker

WORKER_START_TIMEOUT_S = 120
# A shard still out after ten times the job's median time from hand-out to record (and at least the floor)
# is taken to be hung: its worker is killed and its shards go to the others, as for a lost worker.
HUNG_SHARD_FACTOR = 10
HUNG_SHARD_FLOOR_S = 20.0
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


@dataclass
class ShardRun:
    records: dict[int, ShardRecord]  # by shard index, the kept ones included
    workers: list[dict]  # each actor's description, images written, peak memory, or why it was lost
    shard_seconds: float = 0.0  # from the first shard handed out to the last one written


def run_shards(ray, job: ShardJob, kept: dict[int, ShardRecord]) -> ShardRun:
    """Write every shard not in `kept`; a driver interrupt is a GenaugError that says how to resume."""
    from tqdm import tqdm

    plan = job.settings.plan
    run = ShardRun(dict(kept), [])
    actors = _start_actors(ray, job)
    # smoothing=0: the bar's rate is an average over the whole run, as the manifest's is, and its ETA holds
    # steady rather than swinging with each shard that lands.
    bar = tqdm(total=plan.n, initial=sum(r.rows for r in kept.values()), unit="img", unit_scale=True,
               desc="synthesize", disable=not job.progress, smoothing=0)
    try:
        run.workers = _describe(ray, actors)
        bar.unpause()  # its clock starts again with the first shard, as the manifest's shard time does
        started = time.time()
        alive = _hand_out(ray, actors, job, run, bar)
        run.shard_seconds = time.time() - started
        for worker, stats in zip(alive, ray.get([actors[w].final_stats.remote() for w in alive])):
            run.workers[worker].update(stats)
        ray.get([actors[w].close.remote() for w in alive])  # encoder processes end and free their memory
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
    actor_class = ray.remote(ShardWorker)
    token = os.urandom(4).hex()  # names tell this job's actors apart on a shared cluster
    return [
        actor_class.options(
            name=f"genaug-{token}-worker-{i}", num_gpus=1 if workers.use_gpus else 0,
            num_cpus=0 if workers.use_gpus else 1, max_restarts=0, max_task_retries=0,
            max_concurrency=max(1, workers.encode_processes) + 1,
        ).remote(snapshot_ref, job.settings, job.location.uri, workers.encode_processes,
                 TORCH_THREADS_PER_CPU_WORKER, classifier_ref)
        for i in range(workers.count)
    ]


def _hand_out(ray, actors: list, job: ShardJob, run: ShardRun, bar) -> list[int]:
    """Keep every live actor as busy as it can be until every shard is recorded; returns the live actors."""
    pending = deque(s.shard_idx for s in job.settings.plan.shards() if s.shard_idx not in run.records)
    alive = set(range(len(actors)))
    in_flight: dict = {}  # task ref -> (worker, shard_idx, hand-out time)
    seconds_per_shard: list[float] = []
    while pending or in_flight:
        for worker in sorted(alive):
            limit = run.workers[worker]["shards_in_flight"]
            while pending and sum(w == worker for w, _, _ in in_flight.values()) < limit:
                shard_idx = pending.popleft()
                in_flight[actors[worker].run_shard.remote(shard_idx)] = (worker, shard_idx, time.monotonic())
        ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=WAIT_POLL_S)
        if not ready:
            _kill_hung(ray, actors, in_flight, seconds_per_shard, alive, run, bar)
            continue
        worker, shard_idx, handed_out = in_flight.pop(ready[0])
        try:
            record = ray.get(ready[0])
        except _lost_worker_errors(ray) as error:
            pending.appendleft(shard_idx)
            _lose(worker, type(error).__name__, alive, run, bar, job.settings.plan.num_shards)
            continue
        except ray.exceptions.RayTaskError as error:
            raise _task_error(error, shard_idx) from None
        seconds_per_shard.append(time.monotonic() - handed_out)
        _record(job, run, worker, record)
        if record.candidates is not None:  # a --min-confidence job: how many latents it takes per kept image
            bar.set_postfix_str(_acceptance(run.records.values()), refresh=False)
        bar.update(record.rows)
    return sorted(alive)


def _acceptance(records) -> str:
    """'accepted 62.1% of 16.1k candidates' over the shards of a --min-confidence job written so far."""
    tried = sum(sum(r.candidates) for r in records if r.candidates is not None)
    kept = sum(r.rows for r in records if r.candidates is not None)
    return f"accepted {kept / max(tried, 1):.1%} of {tried / 1000:,.1f}k candidates"


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


def _kill_hung(ray, actors, in_flight: dict, seconds_per_shard: list, alive: set, run: ShardRun, bar) -> None:
    """Kill the workers of shards out far longer than shards take; their tasks then fail as a lost worker's do."""
    if not seconds_per_shard:
        return  # nothing measured yet: the first shards also pay for start-up
    deadline = max(HUNG_SHARD_FLOOR_S, HUNG_SHARD_FACTOR * statistics.median(seconds_per_shard))
    now = time.monotonic()
    for worker in {w for w, _, handed_out in in_flight.values() if now - handed_out > deadline and w in alive}:
        ray.kill(actors[worker])
        _lose(worker, f"hung: a shard out for over {deadline:.0f} s", alive, run, bar, None)


def _lose(worker: int, why: str, alive: set, run: ShardRun, bar, num_shards: int | None) -> None:
    if worker in alive:
        alive.discard(worker)
        run.workers[worker]["lost"] = why
        bar.write(f"worker {worker} on {run.workers[worker]['node_ip']} lost ({why}); "
                  f"its shards go to the {len(alive)} others", file=sys.stderr)
    if not alive and num_shards is not None:
        raise GenaugError(
            f"every worker was lost; {len(run.records)} of {num_shards} shards are finished and kept "
            "(rerun the same command with --resume once workers are available)"
        ) from None


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


def _describe(ray, actors) -> list[dict]:
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
