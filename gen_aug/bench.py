"""`genaug bench`: generator, encoder and end-to-end synthesis throughput on this machine, against their ceiling.

The ceiling of a synthesis job is min(generator rate per worker x workers, encoder rate per core x
cores): whichever wall the machine hits first. Generator and encoder rates are the median over
timed rounds, so a moment when another process takes the core does not move them; the generator's
rounds are timed before and after the end-to-end runs, so that a slow spell of the machine shows
in the ceiling as it does in the runs. End-to-end figures come from a real `genaug synthesize` run
in a child process, so its driver's peak memory is its own; with `scaling`, runs on one worker say
how the job scales across workers, and `repeats` runs of each give medians.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gen_aug.errors import GenaugError

DEFAULT_NUM_CLASSES = 10
ENCODER_SAMPLE_IMAGES = 2048  # real generated images, so PNG sizes and times are those of synthesis


@dataclass(frozen=True)
class BenchOptions:
    model: str | None = None  # snapshot; None: an untrained cgan of the default size (speed ignores training)
    resolution: int = 28
    channels: int = 1
    n: int = 20_000  # images of the end-to-end run
    workers: int | None = None  # CPU workers; None: one per core
    gpus: int = 0
    formats: tuple[str, ...] = ("parquet",)
    shard_size: int = 2_000
    seconds: float = 3.0  # how long each generator or encoder loop runs, after one warm-up round
    encode_processes: int | None = None  # passed to the end-to-end synthesize run; None: its default
    scaling: bool = False  # also run end to end on one worker, for the speed-up of all of them over one
    repeats: int = 1  # end-to-end runs per format (and per worker count); figures are their median


def run_bench(options: BenchOptions, work_dir: Path) -> dict:
    """Every figure of one bench run, measured on this machine, as a JSON-ready dict."""
    from gen_aug.checkpoint import load_snapshot

    if options.gpus and not torch.cuda.is_available():
        raise GenaugError(f"--gpus {options.gpus}: torch sees no CUDA device here (expected --gpus 0)")
    cores = os.cpu_count() or 1
    workers = options.gpus or options.workers or cores
    snapshot_path = options.model or untrained_snapshot(options, work_dir)
    snapshot = load_snapshot(snapshot_path)
    device = torch.device("cuda" if options.gpus else "cpu")
    sample = sample_images(snapshot.model, snapshot.meta)  # on the CPU, where the snapshot loads
    model = snapshot.model.to(device)  # moves the module itself: it stays on `device` for both generator timings
    generator_rounds = one_worker_generator_rounds(model, device, options.seconds)
    results = {
        "machine": machine_description(),
        "model": {"snapshot": str(snapshot_path), "family": snapshot.meta["family"], "config": snapshot.meta["config"],
                  "evaluations_per_image": model.evaluations_per_image},
        "workers": workers,
        "device": device.type,
        "cores": cores,
        "formats": {},
    }
    encode_rates = {}
    for image_format in options.formats:
        encode_rates[image_format], encode_rounds = encoder_images_per_sec(
            sample, snapshot.meta["class_names"], image_format, work_dir, options.seconds)
        all_cores = encoder_scaling(sample, snapshot.meta["class_names"], image_format, work_dir, cores)
        # Runs on all workers and on one alternate, so a slow spell of a shared machine hits both alike.
        runs, one_worker_runs = [], []
        for _ in range(options.repeats):
            runs.append(end_to_end_run(snapshot_path, options, image_format, workers, work_dir))
            if options.scaling and workers > 1:
                one_worker_runs.append(end_to_end_run(snapshot_path, options, image_format, 1, work_dir))
        results["formats"][image_format] = figures = {
            "encoder_images_per_sec_per_core": round(encode_rates[image_format], 1),
            "encoder_rounds": encode_rounds,
            "encoder_images_per_sec_all_cores": all_cores,
            **median_run(runs),
        }
        if one_worker_runs:
            one_worker = median_run(one_worker_runs)["end_to_end_images_per_sec"]
            figures["one_worker_images_per_sec"] = one_worker
            figures["one_worker_runs_images_per_sec"] = [run["end_to_end_images_per_sec"] for run in one_worker_runs]
            figures["speedup_over_one_worker"] = round(figures["end_to_end_images_per_sec"] / one_worker, 3)
    # The generator again after the runs: this machine's speed drifts over minutes, and the median of rounds
    # from both ends is the rate the runs in between met.
    generator_rounds += one_worker_generator_rounds(model, device, options.seconds)
    generator_rate = median_rate(generator_rounds)
    results["generator_images_per_sec_per_worker"] = round(generator_rate, 1)
    results["generator_rounds"] = len(generator_rounds)
    for image_format, figures in results["formats"].items():
        ceiling = min(generator_rate * workers, encode_rates[image_format] * cores)
        figures["ceiling_images_per_sec"] = round(ceiling, 1)
        figures["wall"] = "generator" if generator_rate * workers <= encode_rates[image_format] * cores else "encoder"
        figures["ratio_to_ceiling"] = round(figures["end_to_end_images_per_sec"] / ceiling, 3)
    return results


def median_run(runs: list) -> dict:
    """The figures of repeated end-to-end runs: the median rate, every run's rate, the highest peak memory."""
    rates = [run["end_to_end_images_per_sec"] for run in runs]
    middle = sorted(runs, key=lambda run: run["end_to_end_images_per_sec"])[len(runs) // 2]
    return {
        **middle,
        "end_to_end_images_per_sec": round(float(np.median(rates)), 1),
        "end_to_end_runs_images_per_sec": rates,
        "driver_peak_rss_mib": max(run["driver_peak_rss_mib"] for run in runs),
        "worker_peak_rss_mib": max(run["worker_peak_rss_mib"] for run in runs),
    }


def median_rate(images_and_seconds: list) -> float:
    """Median images/s over timed rounds: robust to a round that another process slowed down."""
    return float(np.median([images / seconds for images, seconds in images_and_seconds]))


def untrained_snapshot(options: BenchOptions, work_dir: Path) -> str:
    from gen_aug.checkpoint import save_snapshot
    from gen_aug.models import build_model

    torch.manual_seed(0)  # weights' values do not change speed, but fixed ones make PNG sizes repeatable
    config = {"resolution": options.resolution, "channels": options.channels, "num_classes": DEFAULT_NUM_CLASSES}
    model = build_model("cgan", config)
    path = work_dir / "untrained.safetensors"
    save_snapshot(path, model, {"class_names": [str(c) for c in range(DEFAULT_NUM_CLASSES)]})
    return str(path)


def one_worker_generator_rounds(model: torch.nn.Module, device: torch.device, seconds: float) -> list:
    """Generator rounds timed with this process's torch threads set as one worker's are (see the scheduler)."""
    from gen_aug.synthesis.scheduler import TORCH_THREADS_PER_CPU_WORKER

    threads_before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(TORCH_THREADS_PER_CPU_WORKER)
    try:
        return generator_rounds(model, device, seconds)
    finally:
        torch.set_num_threads(threads_before)


def generator_rounds(model: torch.nn.Module, device: torch.device, seconds: float) -> list:
    """One worker's generator, images into host memory (pinned on CUDA), as synthesis runs it.

    Returns (images, seconds) of each call made in `seconds` (at least 3), after one untimed call.
    """
    from gen_aug.sampling import GENERATION_CHUNK, generate_uint8

    config = model.config
    batch = GENERATION_CHUNK[device.type] * (4 if device.type == "cuda" else 1)
    host = torch.empty((batch, config.channels, config.resolution, config.resolution), dtype=torch.uint8,
                       pin_memory=device.type == "cuda")
    labels = torch.arange(batch) % config.num_classes

    def generate(round_idx: int) -> int:
        generate_uint8(model, 0, torch.arange(round_idx * batch, (round_idx + 1) * batch), labels, device, out=host)
        return batch

    return timed_rounds(generate, seconds)


def timed_rounds(run_round: Callable[[int], int], seconds: float) -> list:
    """(images, seconds) of each call run_round(1), run_round(2), ... made in `seconds` (at least 3).

    Round 0 runs first, untimed: it pays for imports, allocations and kernel loading.
    """
    run_round(0)
    rounds, started = [], time.perf_counter()
    while time.perf_counter() - started < seconds or len(rounds) < 3:
        round_started = time.perf_counter()
        images = run_round(len(rounds) + 1)
        rounds.append((images, time.perf_counter() - round_started))
    return rounds


def sample_images(model: torch.nn.Module, meta: dict) -> np.ndarray:
    from gen_aug.sampling import generate_uint8

    indices = torch.arange(ENCODER_SAMPLE_IMAGES)
    return generate_uint8(model, 0, indices, indices % len(meta["class_names"]), "cpu").numpy()


def _encode_round(sample: np.ndarray, class_names: list, image_format: str, out_dir: str, round_idx: int) -> int:
    """Encode and write the sample as one shard, exactly as an encoder does; returns images written."""
    from gen_aug.output.formats import get_format, write_shard
    from gen_aug.output.plan import make_plan
    from gen_aug.output.storage import open_location

    plan = make_plan(tuple(class_names), n=len(sample), shard_size=len(sample), seed=round_idx)
    location = open_location(os.path.join(out_dir, str(round_idx)))
    write_shard(location, plan, plan.shard(0), sample, get_format(image_format))
    return len(sample)


def encoder_images_per_sec(sample: np.ndarray, class_names: list, image_format: str, work_dir: Path,
                           seconds: float) -> tuple[float, int]:
    """One core encoding and writing shards of `image_format`: median rate over rounds (at least 3), rounds."""
    out_dir = tempfile.mkdtemp(prefix=f"encode-{image_format}-", dir=work_dir)
    rounds = timed_rounds(lambda round_idx: _encode_round(sample, class_names, image_format, out_dir, round_idx),
                          seconds)
    return median_rate(rounds), len(rounds)


def encoder_scaling(sample: np.ndarray, class_names: list, image_format: str, work_dir: Path, cores: int) -> dict:
    """Encoders on every core at once, as threads and as processes: which one synthesis should use."""
    rounds = 2 * cores
    chunks = np.array_split(sample, 4)  # smaller shards keep every encoder busy to the end
    found = {}
    for kind in ("threads", "processes"):
        out_dir = tempfile.mkdtemp(prefix=f"scale-{kind}-", dir=work_dir)
        if kind == "threads":
            pool = ThreadPoolExecutor(cores)
        else:
            pool = ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("spawn"))
        with pool:
            list(pool.map(_encode_round, chunks[:1] * cores, [class_names] * cores, [image_format] * cores,
                          [out_dir] * cores, range(cores)))  # warm-up: start every worker
            started = time.perf_counter()
            jobs = [pool.submit(_encode_round, chunks[r % 4], class_names, image_format, out_dir, cores + r)
                    for r in range(rounds * 4)]
            images = sum(job.result() for job in jobs)
            found[kind] = round(images / (time.perf_counter() - started), 1)
    return found


def end_to_end_run(snapshot_path: str, options: BenchOptions, image_format: str, workers: int, work_dir: Path) -> dict:
    """A real `genaug synthesize` in a child process; its manifest's figures and both processes' peak memory."""
    out = tempfile.mkdtemp(prefix=f"synth-{image_format}-", dir=work_dir)
    command = [sys.executable, "-m", "gen_aug", "synthesize", "--model", snapshot_path, "--n", str(options.n),
               "--out", out, "--format", image_format, "--shard-size", str(options.shard_size)]
    command += ["--gpus", str(workers)] if options.gpus else ["--gpus", "0", "--workers", str(workers)]
    if options.encode_processes is not None:
        command += ["--encode-processes", str(options.encode_processes)]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall_seconds = time.perf_counter() - started
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise GenaugError(f"bench: the end-to-end synthesize run failed ({last})")
    from gen_aug.output.manifest import MANIFEST

    manifest = json.loads((Path(out) / MANIFEST).read_text())
    worker_peaks = [w.get("peak_rss_bytes", 0) for w in manifest["workers"]]
    joined = [w for w in manifest["workers"] if w.get("joined_s") is not None]  # a late worker may never start
    return {
        "end_to_end_images_per_sec": manifest["images_per_sec"],
        "end_to_end_wall_seconds": round(wall_seconds, 2),
        "images": manifest["totals"]["images"],
        "driver_peak_rss_mib": round(manifest["driver_peak_rss_bytes"] / 2**20, 1),
        "worker_peak_rss_mib": round(max(worker_peaks) / 2**20, 1),
        "encoders_per_worker": joined[0].get("encoders") if joined else None,
        "handoff": joined[0].get("handoff") if joined else None,  # how a generated shard reaches its encoder
    }


def machine_description() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    }


def describe_bench(results: dict) -> str:
    """The table `genaug bench` prints."""
    lines = [
        f"machine      {results['machine']['processor']}, {results['cores']} cores, "
        f"{results['machine']['memory_gib']} GiB, gpus: {', '.join(results['machine']['gpus']) or 'none'}",
        f"generator    {results['generator_images_per_sec_per_worker']:>12,.0f} img/s per worker "
        f"({results['device']}, median of {results['generator_rounds']} rounds), {results['workers']} workers, "
        f"{results['model']['evaluations_per_image']} network evaluations per image",
    ]
    header = f"{'format':<8} {'encode/core':>12} {'threads':>10} {'processes':>10} {'ceiling':>10} " \
             f"{'end-to-end':>11} {'ratio':>6} {'wall':>9} {'driver MiB':>10} {'worker MiB':>10}"
    lines += ["", header]
    for name, f in results["formats"].items():
        scaling = f["encoder_images_per_sec_all_cores"]
        lines.append(
            f"{name:<8} {f['encoder_images_per_sec_per_core']:>12,.0f} {scaling['threads']:>10,.0f} "
            f"{scaling['processes']:>10,.0f} {f['ceiling_images_per_sec']:>10,.0f} "
            f"{f['end_to_end_images_per_sec']:>11,.0f} {f['ratio_to_ceiling']:>6.2f} {f['wall']:>9} "
            f"{f['driver_peak_rss_mib']:>10,.0f} {f['worker_peak_rss_mib']:>10,.0f}"
        )
    for name, f in results["formats"].items():
        runs = len(f["end_to_end_runs_images_per_sec"])
        lines.append(f"encoders {name}: {f['encoders_per_worker']} per worker, shards handed over {f['handoff']}")
        if "speedup_over_one_worker" in f:
            lines.append(f"scaling  {name}: {results['workers']} workers {f['end_to_end_images_per_sec']:,.0f} img/s, "
                         f"1 worker {f['one_worker_images_per_sec']:,.0f} img/s: {f['speedup_over_one_worker']:.2f}x"
                         + (f" (medians of {runs} alternating runs each)" if runs > 1 else ""))
        if runs > 1:
            rates = ", ".join(f"{rate:,.0f}" for rate in f["end_to_end_runs_images_per_sec"])
            lines.append(f"runs     {name}: end-to-end {rates} img/s (the table gives their median, and the highest "
                         "peak memory)")
    lines.append("(img/s; encode/core: median over rounds; ceiling = min(generator x workers, encode/core x cores); "
                 "end-to-end from a real synthesize run)")
    return "\n".join(lines)
