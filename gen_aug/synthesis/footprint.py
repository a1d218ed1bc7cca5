"""What a synthesis job will write, told before it starts: bytes and time from a small sample, and the room for them."""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gen_aug.errors import GenaugError
from gen_aug.output.formats import get_format
from gen_aug.synthesis.options import SynthesisOptions
from gen_aug.output.ownership import inspect_output
from gen_aug.output.plan import Plan, make_plan
from gen_aug.synthesis.session import Workers
from gen_aug.output.settings import JobSettings
from gen_aug.units import duration
from gen_aug.output.storage import LocalLocation, Location

# The job's first images, encoded as its shards will be: enough to average out one image's luck, and drawn
# on the CPU in a moment (the generator pads every call to a full chunk anyway).
SAMPLE_IMAGES = 32


@dataclass(frozen=True)
class Footprint:
    format: str
    bytes_per_image: float
    bytes_per_shard: float  # what one shard file costs beyond its images (Parquet's schema, footer); 0 for PNG
    seconds_per_image: float = 0.0  # drawing the sample from noise here, on this process's torch threads

    def total_bytes(self, plan: Plan) -> int:
        return math.ceil(self.bytes_per_image * plan.n + self.bytes_per_shard * plan.num_shards)


def estimate_footprint(model: torch.nn.Module, plan: Plan, image_format: str) -> Footprint:
    """Encode the job's first images twice, all and half of them: the difference is the bytes of one image."""
    from gen_aug.images import to_uint8
    from gen_aug.sampling import latents, non_finite_images

    rows = min(SAMPLE_IMAGES, plan.n)
    labels = torch.from_numpy(plan.labels(0, rows))
    # The rows alone, not padded to a generation chunk: an estimate needs no exact bytes, and a diffusion
    # sampler's cost grows with every padded row.
    started = time.perf_counter()
    with torch.inference_mode():
        generated = model.generate(latents(plan.seed, torch.arange(rows), model.z_dim), labels)
    seconds_per_image = (time.perf_counter() - started) / rows
    if not torch.isfinite(generated).all():  # refused here, before Ray starts or anything is written
        raise non_finite_images(0, rows - 1)
    images = to_uint8(generated).numpy()
    whole = _encoded_bytes(images, plan.class_names, image_format)
    if rows < 2:
        return Footprint(image_format, float(whole), 0.0, seconds_per_image)
    half = _encoded_bytes(images[: rows // 2], plan.class_names, image_format)
    per_image = (whole - half) / (rows - rows // 2)
    return Footprint(image_format, per_image, max(0.0, whole - per_image * rows), seconds_per_image)


def _encoded_bytes(images: np.ndarray, class_names: tuple[str, ...], image_format: str) -> int:
    sample = make_plan(class_names, n=len(images), shard_size=len(images))
    return sum(len(data) for data in get_format(image_format).encode(sample, sample.shard(0), images, None))


def check_room(location: Location, options: SynthesisOptions, footprint: Footprint, plan: Plan) -> None:
    """Refuse a local output whose file system lacks the estimated bytes, before anything is written there."""
    if not isinstance(location, LocalLocation):
        return  # an object store has no free space to ask for
    needed = footprint.total_bytes(plan)
    # --resume keeps the shards already there and --overwrite deletes them: either way their bytes are room.
    free = _free_bytes(Path(location.root))
    if free is None:
        return  # a path the file system refuses (a name too long, a file as a folder): claiming it says why
    room = free + (_bytes_of_ours(location) if options.resume or options.overwrite else 0)
    if needed <= room:
        return
    fits = _two_figures(int(room // (needed / plan.n)))
    instead = f"--n {fits:,} or fewer, or an --out with more room" if fits else "an --out with more room"
    raise GenaugError(
        f"--out {options.out!r}: about {byte_text(needed)} for {plan.n:,} {footprint.format} images (about "
        f"{footprint.bytes_per_image:,.0f} bytes each) and {byte_text(room)} free on its file system "
        f"(expected {instead})"
    )


def _two_figures(count: int) -> int:
    """Rounded down to two significant figures (962,215,640 -> 960,000,000): an estimate is no more exact."""
    scale = 10 ** max(0, len(str(count)) - 2)
    return count // scale * scale


def _free_bytes(path: Path) -> int | None:
    """Free bytes, for an unprivileged writer, on the file system the output folder is (or will be) on."""
    while not os.path.exists(path) and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def _bytes_of_ours(location: LocalLocation) -> int:
    return sum(os.lstat(location.path(relative)).st_size for relative in inspect_output(location).ours)


def rough_time(footprint: Footprint, settings: JobSettings, workers: Workers, kept_images: int) -> str:
    """'; roughly 9 min here' for CPU workers (the sample was drawn on this CPU, GPU workers are another matter):
    the sample's time per image, for each image still to make, spread over the workers."""
    if workers.use_gpus or not footprint.seconds_per_image:
        return ""
    draws = 1.0  # sampler runs per image, as a share of one from noise
    at_least = settings.filter is not None  # a filter judges candidates until enough pass: more rounds, more time
    if settings.variants is not None:  # a variant at strength S runs that share of the sampler's path
        draws *= sum(settings.variants.strengths) / len(settings.variants.strengths)
    if settings.filter is not None and settings.filter.select == "useful":
        draws *= settings.filter.candidates_per_round
    # A CPU worker runs one torch thread; the sample ran on all of this process's.
    seconds = (settings.plan.n - kept_images) * draws * footprint.seconds_per_image * torch.get_num_threads()
    seconds /= workers.count
    return f"; {'at least' if at_least else 'roughly'} {duration(seconds)} here"


def describe_plan(plan: Plan, workers: Workers, footprint: Footprint, shard_size_given: bool, kept_images: int,
                  when: str = "") -> str:
    """The line `genaug synthesize` prints on stderr before its first shard; `when`: rough_time's words."""
    shards = f"{plan.num_shards:,} shard{'s' if plan.num_shards != 1 else ''} of {plan.shard_size:,}"
    chosen = "" if shard_size_given else " (sized for the workers: no --shard-size given)"
    kept = f" ({kept_images:,} kept from before)" if kept_images else ""
    kind = "GPU" if workers.use_gpus else "CPU"
    return (
        f"plan         {plan.n:,} images{kept} in {shards}{chosen} on {workers.count} {kind} "
        f"worker{'s' if workers.count != 1 else ''}; about {byte_text(footprint.total_bytes(plan))} of "
        f"{footprint.format} (about {footprint.bytes_per_image:,.0f} bytes per image){when}"
    )


def byte_text(count: float) -> str:
    """Decimal units, as file managers and disk vendors give sizes: 950 B, 12.3 MB, 9.1 TB."""
    units = ("B", "kB", "MB", "GB", "TB")
    power = min(len(units) - 1, int(math.log10(max(count, 1)) // 3))
    value = count / 1000**power
    return f"{value:,.0f} B" if power == 0 else f"{value:,.1f} {units[power]}"
