"""Shared-memory slots that carry generated shards from a worker to its encoder processes.

Sent as an argument, a shard is pickled and squeezed through the process pool's one pipe: about
0.45 GB/s on the 2-core test box, or some 570 k images/s at 28x28, under the rate a GPU makes
them at. In a slot the encoder reads the pixels where the worker wrote them, and only the slot's
number crosses the pipe. The segments are unlinked as soon as every encoder has mapped them, so
their memory goes back when the last of those processes ends, however it ends.
"""

from __future__ import annotations

import contextlib
import math
import queue
import shutil
from multiprocessing.shared_memory import SharedMemory

import numpy as np

SHARED_MEMORY_DIR = "/dev/shm"  # where Linux keeps POSIX shared memory, a tmpfs that may be small in containers
SHARED_MEMORY_HEADROOM = 2  # use slots only when tmpfs has twice their size free: a full tmpfs kills the writer

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


def write_slot_shard(out_uri: str, plan_json: str, shard_idx: int, slot: int, rows: int, image_format: str,
                     latent_indices: np.ndarray | None = None) -> dict:
    """In an encoder process: encode and write the shard the worker left in `slot`; returns its manifest record."""
    from gen_aug.synthesis.formats import write_shard_in_encoder

    return write_shard_in_encoder(out_uri, plan_json, shard_idx, slot_images(slot, rows), image_format, latent_indices)


def load_encoder_modules() -> int:
    """Import what encoding needs, so that the first shard does not pay for it; returns the process id."""
    import os

    import pyarrow.parquet  # noqa: F401
    from PIL import PngImagePlugin  # noqa: F401

    import gen_aug.synthesis.formats  # noqa: F401

    return os.getpid()
