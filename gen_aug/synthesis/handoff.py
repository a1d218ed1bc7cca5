"""How a worker hands generated shards to its encoders: a thread, processes fed by a pipe, or shared-memory slots.

A worker fills a uint8 shard buffer and an encoder turns it into files. With one encoder thread the
buffer is shared memory already. Sent to a process as an argument, a shard is pickled and squeezed through the process pool's one pipe: about
0.45 GB/s on the 2-core test box, or some 570 k images/s at 28x28, under the rate a GPU makes
them at. In a slot the encoder reads the pixels where the worker wrote them, and only the slot's
number crosses the pipe. The segments, and the names of the pool's semaphores, are unlinked as soon
as every encoder has opened them, so they go back when the last of those processes ends, however
it ends.
"""

from __future__ import annotations

import abc
import contextlib
import json
import math
import multiprocessing
import os
import queue
import shutil
import time
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import util as multiprocessing_util
from multiprocessing.shared_memory import SharedMemory
from multiprocessing.synchronize import SemLock

import numpy as np
import torch

from gen_aug.errors import GenaugError
from gen_aug.output.plan import Plan, Shard
from gen_aug.output.records import ShardRecord

SHARED_MEMORY_DIR = "/dev/shm"  # where Linux keeps POSIX shared memory, a tmpfs that may be small in containers
SHARED_MEMORY_HEADROOM = 2  # use slots only when tmpfs has twice their size free: a full tmpfs kills the writer

ENCODER_START_TIMEOUT_S = 120
STAGING_SHARDS = 2  # the generator fills one while the other is copied to a slot

# What a worker's generator does with a shard's buffer: fill it, and return (latent index of each image,
# candidates per class), both None for unfiltered jobs.
Fill = Callable[[torch.Tensor], tuple]

_ENCODER_SLOTS: list[np.ndarray] = []  # in an encoder process: a view of each slot, set up once when it starts
_ENCODER_BLOCKS: list[SharedMemory] = []  # the mappings behind those views, kept open for the process's life


def slots_fit(count: int, slot_shape: tuple[int, ...]) -> bool:
    """Whether `count` slots of uint8 `slot_shape` fit in shared memory with room to spare."""
    try:
        free_bytes = shutil.disk_usage(SHARED_MEMORY_DIR).free
    except OSError:
        return False
    return count * math.prod(slot_shape) * SHARED_MEMORY_HEADROOM <= free_bytes


class ShardSlots:
    """`count` uint8 buffers of `slot_shape` (a whole shard) in shared memory; `free` holds the unused slots' numbers."""

    def __init__(self, count: int, slot_shape: tuple[int, ...]):
        self.slot_shape = tuple(slot_shape)
        self.blocks = [SharedMemory(create=True, size=max(1, math.prod(slot_shape))) for _ in range(count)]
        self.views = [np.ndarray(self.slot_shape, dtype=np.uint8, buffer=block.buf) for block in self.blocks]
        self.free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot in range(count):
            self.free.put(slot)

    @property
    def names(self) -> list[str]:
        return [block.name for block in self.blocks]

    def images(self, slot: int, rows: int) -> np.ndarray:
        return self.views[slot][:rows]

    def unlink(self) -> None:
        """Remove the segments' names once every encoder has mapped them: the memory lives on in the mappings."""
        for block in self.blocks:
            block.unlink()

    def close(self) -> None:
        self.views.clear()  # views keep the buffers exported, and an exported buffer cannot close
        for block in self.blocks:
            block.close()


@contextlib.contextmanager
def borrowed(pool: queue.SimpleQueue):
    """One item of `pool` (waiting for one if it is empty), put back however the block ends."""
    item = pool.get()
    try:
        yield item
    finally:
        pool.put(item)


def attach_slots(names: list[str], slot_shape: tuple[int, ...], attached) -> None:
    """Encoder process initializer: map every slot, then release `attached` (a multiprocessing semaphore)."""
    for name in names:
        block = SharedMemory(name=name)
        _ENCODER_BLOCKS.append(block)
        _ENCODER_SLOTS.append(np.ndarray(tuple(slot_shape), dtype=np.uint8, buffer=block.buf))
    attached.release()


def slot_images(slot: int, rows: int) -> np.ndarray:
    """In an encoder process: the first `rows` images of a slot, without a copy."""
    return _ENCODER_SLOTS[slot][:rows]


def encode_and_write(out_uri: str, plan_json: str, shard_idx: int, images: np.ndarray, format_name: str,
                     columns: dict | None) -> ShardRecord:
    """In an encoder thread or process: `formats.write_shard` from picklable arguments (location and plan reopened once)."""
    from gen_aug.output.formats import get_format, write_shard
    from gen_aug.output.storage import open_location

    key = (out_uri, plan_json)
    if key not in _OPENED:
        _OPENED.clear()
        _OPENED[key] = (open_location(out_uri), Plan.from_dict(json.loads(plan_json)))
    location, plan = _OPENED[key]
    return write_shard(location, plan, plan.shard(shard_idx), images, get_format(format_name), columns)


_OPENED: dict[tuple[str, str], tuple] = {}  # per encoder thread or process: (Location, Plan) of its job


def write_slot_shard(out_uri: str, plan_json: str, shard_idx: int, slot: int, rows: int, format_name: str,
                     columns: dict | None = None) -> ShardRecord:
    """In an encoder process: encode and write the shard the worker left in `slot`."""
    return encode_and_write(out_uri, plan_json, shard_idx, slot_images(slot, rows), format_name, columns)


def load_encoder_modules() -> int:
    """Import what encoding needs, so that the first shard does not pay for it; returns the process id."""
    import pyarrow.parquet  # noqa: F401
    from PIL import PngImagePlugin  # noqa: F401

    import gen_aug.output.formats  # noqa: F401

    return os.getpid()


class Handoff(abc.ABC):
    """Takes a shard from the generator to an encoder; `write` may run in as many threads as `shards_in_flight`."""

    description: str  # in process, pipe or shared memory: what the manifest's workers[].handoff says
    shards_in_flight: int  # shards being generated or encoded at once

    def __init__(self, out_uri: str, plan: Plan, format_name: str, shard_shape: tuple[int, ...], pin_memory: bool):
        self.job = (out_uri, json.dumps(plan.to_dict(), sort_keys=True))
        self.format_name = format_name
        self.shard_shape = tuple(shard_shape)  # (shard_size, C, H, W): the largest shard
        self.pin_memory = pin_memory  # CUDA: page-locked buffers take asynchronous device-to-host copies

    @abc.abstractmethod
    def write(self, shard: Shard, fill: Fill) -> tuple[ShardRecord, list | None]:
        """Let `fill` generate the shard into a buffer, encode and write it; (its record, candidates per class)."""

    def _pool(self) -> Executor:
        """The encoder pool; a stopped one (its replacement is running) is as good as broken."""
        if self.encoders is None:
            raise BrokenExecutor("this hand-off's encoders were stopped")
        return self.encoders

    def stop_encoders(self) -> None:
        """Stop the encoder pool (a broken one too) and release its semaphores."""
        if self.encoders is not None:
            self.encoders.shutdown(wait=True, cancel_futures=True)
            self.encoders = None

    def close(self) -> None:
        """Stop the encoders and free their memory."""
        self.stop_encoders()

    def _new_buffer(self, rows: int) -> torch.Tensor:
        return torch.empty((rows, *self.shard_shape[1:]), dtype=torch.uint8, pin_memory=self.pin_memory)


class ArgumentHandoff(Handoff):
    """The buffer goes to the encoder as an argument: shared with a thread, pickled down the pipe to a process."""

    def __init__(self, encoders: Executor, description: str, encoder_count: int, *args):
        super().__init__(*args)
        self.encoders, self.description = encoders, description
        self.shards_in_flight = encoder_count + 1  # one generating while every encoder has one

    def write(self, shard: Shard, fill: Fill) -> tuple[ShardRecord, list | None]:
        images = self._new_buffer(shard.rows)
        columns, candidates = fill(images)
        job = self._pool().submit(encode_and_write, *self.job, shard.shard_idx, images.numpy(), self.format_name,
                                   columns)
        return job.result(), candidates


class SharedMemoryHandoff(Handoff):
    """The generator fills a staging shard, which is copied to a free slot; only the slot's number crosses the pipe."""

    description = "shared memory"

    def __init__(self, encoders: ProcessPoolExecutor, slots: ShardSlots, *args):
        super().__init__(*args)
        self.encoders, self.slots = encoders, slots
        self.shards_in_flight = len(slots.blocks)
        self.staging: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(STAGING_SHARDS):
            self.staging.put(self._new_buffer(self.shard_shape[0]))

    def write(self, shard: Shard, fill: Fill) -> tuple[ShardRecord, list | None]:
        # Neither waits long: at most as many shards are in flight as there are slots, and staging shards go
        # back as soon as their copy is done.
        with borrowed(self.slots.free) as slot:
            with borrowed(self.staging) as staging:
                columns, candidates = fill(staging[: shard.rows])
                torch.from_numpy(self.slots.images(slot, shard.rows)).copy_(staging[: shard.rows])
            job = self._pool().submit(write_slot_shard, *self.job, shard.shard_idx, slot, shard.rows,
                                       self.format_name, columns)
            return job.result(), candidates

    def close(self) -> None:
        self.stop_encoders()
        self.slots.close()


def start_handoff(processes: int, out_uri: str, plan: Plan, format_name: str, shard_shape: tuple[int, ...],
                  pin_memory: bool, kind: str | None = None) -> Handoff:
    """An encoder thread (processes = 0), or `processes` started encoder processes fed through shared memory
    where it has room and through the pipe otherwise; `kind` forces one of the three descriptions."""
    job = (out_uri, plan, format_name, shard_shape, pin_memory)
    kind = kind or ("in process" if processes == 0 else "shared memory" if slots_fit(processes + 1, shard_shape)
                    else "pipe")
    if kind == "in process":
        # Pillow's zlib and torch release the GIL, so generation and encoding overlap.
        return ArgumentHandoff(ThreadPoolExecutor(1), kind, 1, *job)
    # spawn, not fork: forking a process that runs Ray's and torch's threads can deadlock the child.
    context = multiprocessing.get_context("spawn")
    if kind == "pipe":
        encoders = ProcessPoolExecutor(processes, mp_context=context)
        _wait_started(encoders, processes)
        unlink_semaphores(encoders)
        return ArgumentHandoff(encoders, kind, processes, *job)
    slots = ShardSlots(processes + 1, shard_shape)  # one slot per shard in flight
    attached = context.Semaphore(0)
    encoders = ProcessPoolExecutor(processes, mp_context=context, initializer=attach_slots,
                                   initargs=(slots.names, shard_shape, attached))
    _wait_started(encoders, processes, attached)
    slots.unlink()
    unlink_semaphores(encoders)
    return SharedMemoryHandoff(encoders, slots, *job)


def pool_semaphores(encoders: ProcessPoolExecutor) -> list[SemLock]:
    """The named semaphores behind a process pool: its task and result queues' locks and any in its initializer's
    arguments."""
    holders = [vars(encoders._call_queue), vars(encoders._result_queue), dict(enumerate(encoders._initargs))]
    return [value for holder in holders for value in holder.values() if isinstance(value, SemLock)]


def unlink_semaphores(encoders: ProcessPoolExecutor) -> None:
    """Remove the names of the pool's semaphores now that every encoder process has opened them.

    Under spawn, Linux semaphores have names in /dev/shm that only their creator's finalizer or
    Python's resource tracker removes, and Ray kills a lost worker's children, the tracker among
    them, so neither would run. Running each finalizer now unlinks the name and drops the tracker's
    entry, while every process keeps the semaphore it has open, as the shard slots do. The pool never
    starts a process later: it has all of them, and one that dies breaks it for good.
    """
    names = {lock._semlock.name for lock in pool_semaphores(encoders) if lock._semlock.name}
    for finalizer in list(multiprocessing_util._finalizer_registry.values()):
        if finalizer._callback is SemLock._cleanup and finalizer._args and finalizer._args[0] in names:
            finalizer()


def _wait_started(encoders: ProcessPoolExecutor, count: int, attached=None) -> None:
    """Start all `count` processes now rather than during the job; with `attached`, wait until each mapped the slots."""
    started = [encoders.submit(load_encoder_modules) for _ in range(count)]  # each finds no idle process: one starts
    deadline, mapped = time.monotonic() + ENCODER_START_TIMEOUT_S, 0
    while attached is not None and mapped < count:
        if attached.acquire(timeout=0.1):
            mapped += 1
        elif time.monotonic() > deadline or any(job.done() and job.exception() for job in started):
            raise GenaugError(f"encoders: {mapped} of {count} mapped the shard slots in {ENCODER_START_TIMEOUT_S} s "
                              "(expected every encoder process to start)")
    for job in started:
        job.result(timeout=ENCODER_START_TIMEOUT_S)
