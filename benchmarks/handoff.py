"""How fast a worker gets generated shards encoded and written, with the generator taken out of the way.

    .venv/bin/python benchmarks/handoff.py [--format raw] [--resolution 28] [--channels 1]
                                           [--shard-size 5000] [--shards 40] [--processes 1] [--rounds 3]

On a GPU node the generator outruns every encoder, so what limits a worker is how quickly it can
pass shards to its encoder processes. This runs a real ShardWorker in this process with its
generator replaced by a copy of one ready-made shard (images of the untrained default model, so
they compress as synthesis output does), and times shards going through each hand-off: an encoder
thread in the worker ("in process"), encoder processes reading shared memory, and encoder
processes fed through the pool's pipe. Rounds alternate between the kinds, so a slow spell of a
shared machine hits them alike; it prints each kind's median images/s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from gen_aug.bench import BenchOptions, machine_description, sample_images, untrained_snapshot
from gen_aug.checkpoint import load_snapshot
from gen_aug.output.plan import make_plan
from gen_aug.output.settings import JobSettings
from gen_aug.synthesis.worker import ShardWorker


class ReadyShard:
    """Stands in for the worker's generator: its output without its cost."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def fill(self, shard, out):
        out.copy_(self.images[: len(out)])
        return None, None


def ready_shard(snapshot_path: str, rows: int) -> torch.Tensor:
    """`rows` images of the model, so that they compress as synthesis output does: its first 2,048, repeated."""
    snapshot = load_snapshot(snapshot_path)
    images = torch.from_numpy(sample_images(snapshot.model, snapshot.meta))
    return images.repeat(-(-rows // len(images)), 1, 1, 1)[:rows].contiguous()


def time_kind(snapshot: bytes, settings: JobSettings, ready: ReadyShard, out_dir: str, kind: str, processes: int,
              shards: int) -> float:
    """Images/s of one worker writing `shards` shards after a warm-up of one shard per encoder."""
    worker = ShardWorker(snapshot, settings, out_dir, processes, 1, images=ready, handoff=kind)
    try:
        with ThreadPoolExecutor(worker.describe()["shards_in_flight"]) as calls:
            list(calls.map(worker.run_shard, range(max(1, processes))))
            started = time.perf_counter()
            list(calls.map(worker.run_shard, range(shards)))
            seconds = time.perf_counter() - started
    finally:
        worker.close()
    return shards * settings.plan.shard_size / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", default="raw", choices=["raw", "parquet", "png"])
    parser.add_argument("--resolution", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1, choices=[1, 3])
    parser.add_argument("--shard-size", type=int, default=5000)
    parser.add_argument("--shards", type=int, default=40)
    parser.add_argument("--processes", type=int, default=1, help="encoder processes of the two process kinds")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="handoff-"))
    snapshot_path = untrained_snapshot(BenchOptions(resolution=args.resolution, channels=args.channels), work)
    snapshot = Path(snapshot_path).read_bytes()
    ready = ReadyShard(ready_shard(snapshot_path, args.shard_size))
    plan = make_plan(tuple(str(c) for c in range(10)), n=args.shards * args.shard_size, shard_size=args.shard_size)
    settings = JobSettings(plan, args.format, load_snapshot(snapshot_path).sha256, "cpu", 256)
    kinds = {"in process": 0, "shared memory": args.processes, "pipe": args.processes}
    rates: dict[str, list[float]] = {kind: [] for kind in kinds}
    for round_idx in range(args.rounds):
        for kind, processes in kinds.items():
            out_dir = str(work / f"{kind.replace(' ', '-')}-{round_idx}")
            rates[kind].append(time_kind(snapshot, settings, ready, out_dir, kind, processes, args.shards))
    machine = machine_description()
    print(f"{machine['processor']}, {machine['cores']} cores; {args.format} {args.resolution}x{args.resolution}"
          f"x{args.channels}, {args.shards} shards of {args.shard_size}, {args.processes} encoder process(es)")
    base = statistics.median(rates["in process"])
    for kind, values in rates.items():
        median = statistics.median(values)
        mb_per_sec = median * args.channels * args.resolution**2 / 1e6
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{kind:<14} {median:>11,.0f} img/s {mb_per_sec:>7,.0f} MB/s {median / base:>5.2f}x  ({runs})")


if __name__ == "__main__":
    main()
