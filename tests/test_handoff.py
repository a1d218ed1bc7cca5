"""Shards handed to encoder processes through shared memory: same bytes as any other hand-off, nothing left behind.

Guards: gen_aug/synthesis/handoff.py, gen_aug/synthesis/worker.py
"""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

from gen_aug.checkpoint import load_snapshot, save_snapshot
from gen_aug.models import build_model
from gen_aug.synthesis import handoff
from gen_aug.output.formats import FORMATS, write_shard
from gen_aug.synthesis.handoff import ShardSlots, attach_slots, slots_fit, write_slot_shard
from gen_aug.output.plan import make_plan
from gen_aug.synthesis.reaper import descendants, process_table
from gen_aug.output.settings import JobSettings
from gen_aug.output.storage import open_location
from gen_aug.synthesis.worker import ShardWorker

NAMES = ("cat", "dog", "owl")
SHM = "/dev/shm"

pytestmark = pytest.mark.skipif(not os.path.isdir(SHM), reason="needs POSIX shared memory under /dev/shm")


def test_an_encoder_process_writes_from_a_slot_the_bytes_of_the_array_itself(tmp_path):
    plan = make_plan(NAMES, n=12, shard_size=12, seed=3)
    images = np.random.default_rng(0).integers(0, 256, (12, 1, 8, 8), dtype=np.uint8)
    direct = write_shard(open_location(str(tmp_path / "direct")), plan, plan.shard(0), images, FORMATS["raw"])
    slots = ShardSlots(2, images.shape)
    context = multiprocessing.get_context("spawn")
    attached = context.Semaphore(0)
    with ProcessPoolExecutor(1, mp_context=context, initializer=attach_slots,
                             initargs=(slots.names, images.shape, attached)) as pool:
        assert pool.submit(os.getpid).result() != os.getpid()
        assert attached.acquire(timeout=60)
        names = slots.names
        slots.unlink()
        assert not any(os.path.exists(os.path.join(SHM, name)) for name in names)  # nothing a crash could leave
        slots.images(1, 12)[:] = images  # written after the unlink: the mappings still share it
        record = pool.submit(write_slot_shard, str(tmp_path / "slot"), json.dumps(plan.to_dict()), 0, 1, 12,
                             "raw").result()
    slots.close()
    assert record.sha256 == direct.sha256 and record.rows == 12


def test_slots_fit_only_where_shared_memory_has_room(monkeypatch):
    assert slots_fit(4, (10, 1, 8, 8))
    free = os.statvfs(SHM).f_bavail * os.statvfs(SHM).f_frsize
    assert not slots_fit(1, (free // 2 + 1,))  # would leave less than the headroom
    monkeypatch.setattr(handoff, "SHARED_MEMORY_DIR", "/nonexistent-shm")
    assert not slots_fit(1, (1,))


def shards_written(tmp_path, name: str, encode_processes: int) -> tuple[list[str], dict]:
    """Every shard's sha256 from a real ShardWorker (run in-process), and its description."""
    snapshot_path = tmp_path / "model.safetensors"
    if not snapshot_path.exists():
        model = build_model("cgan", {"resolution": 8, "channels": 1, "num_classes": 3, "z_dim": 8, "width": 4})
        save_snapshot(snapshot_path, model, {"class_names": list(NAMES)})
    plan = make_plan(NAMES, n=75, shard_size=10, seed=1)
    settings = JobSettings(plan, "parquet", load_snapshot(snapshot_path).sha256, "cpu", 256)
    before = set(os.listdir(SHM))
    worker = ShardWorker(snapshot_path.read_bytes(), settings, str(tmp_path / name), encode_processes, 1)
    try:
        assert not {f for f in set(os.listdir(SHM)) - before if not f.startswith("sem.")}, "slots outlived the start"
        # As many calls at once as Ray's actor allows, in an order unlike the plan's.
        with ThreadPoolExecutor(worker.describe()["shards_in_flight"]) as calls:
            records = list(calls.map(worker.run_shard, [s.shard_idx for s in reversed(list(plan.shards()))]))
    finally:
        worker.close()
    assert set(os.listdir(SHM)) <= before  # the pool's semaphores went with it
    return [r.sha256 for r in sorted(records, key=lambda r: r.shard_idx)], worker.describe()


def test_a_worker_hands_shards_to_processes_through_shared_memory_with_the_same_bytes(tmp_path, monkeypatch):
    in_thread, thread_info = shards_written(tmp_path, "thread", 0)
    in_slots, slot_info = shards_written(tmp_path, "slots", 2)
    monkeypatch.setattr(handoff, "SHARED_MEMORY_HEADROOM", 10**12)  # shared memory too small: pickled down the pipe
    in_pipe, pipe_info = shards_written(tmp_path, "pipe", 1)
    assert (thread_info["handoff"], slot_info["handoff"], pipe_info["handoff"]) == (
        "in process", "shared memory", "pipe")
    assert slot_info["encoders"] == "2 processes" and slot_info["shards_in_flight"] == 3
    assert in_thread == in_slots == in_pipe


# A worker that starts its encoder processes, says which semaphores it made (every SemLock, as it is made), and waits.
WORKER_WITH_ENCODERS = """
import json, sys, time
import multiprocessing.synchronize as synchronize
from gen_aug.synthesis.handoff import start_handoff
from gen_aug.output.plan import make_plan

made, make = [], synchronize.SemLock.__init__
def recorded(self, *args, **kwargs):
    make(self, *args, **kwargs)
    made.append(self._semlock.name)
synchronize.SemLock.__init__ = recorded
plan = make_plan(("cat", "dog", "owl"), n=10, shard_size=10, seed=1)
handoff = start_handoff(1, sys.argv[1], plan, "parquet", (10, 1, 8, 8), False, kind=sys.argv[2])
print(json.dumps(made), flush=True)
time.sleep(300)
"""


@pytest.mark.parametrize("kind", ["pipe", "shared memory"])
def test_a_worker_killed_with_its_encoders_and_resource_tracker_leaves_no_semaphore(tmp_path, kind):
    """Ray kills a lost worker and every process it started, Python's resource tracker too: no name may be left."""
    worker = subprocess.Popen([sys.executable, "-c", WORKER_WITH_ENCODERS, str(tmp_path / "out"), kind],
                              stdout=subprocess.PIPE, text=True)
    below = {}
    try:
        made = json.loads(worker.stdout.readline() or "[]")
        below = descendants({worker.pid}, process_table())
    finally:
        for pid in (worker.pid, *below):
            os.kill(pid, signal.SIGKILL)
        worker.wait()
    deadline = time.monotonic() + 30
    while any(process_table().get(pid, (0, None))[1] == started for pid, started in below.items()):
        assert time.monotonic() < deadline, "the killed processes did not end"
        time.sleep(0.1)
    assert len(made) >= 5 and len(below) >= 2, (made, below)  # the pool's queues' locks; an encoder and the tracker
    left = [name for name in made if os.path.exists(os.path.join(SHM, "sem." + name.lstrip("/")))]
    assert not left, f"{len(left)} of {len(made)} semaphores left in {SHM}"
