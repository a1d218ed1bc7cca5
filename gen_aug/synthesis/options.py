"""SynthesisOptions: what `genaug synthesize` takes, and the job file's [synthesize] section, in one keyword-built type."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from gen_aug.checks import NOT_IN_JOB, require
from gen_aug.errors import GenaugError
from gen_aug.output.plan import MAX_SEED

if TYPE_CHECKING:
    from gen_aug.classifiers.classifier import ClassifierConfig

# A job fails for want of workers only when none has started in this long: on a loaded machine or a
# cluster that is scaling up, the first worker may take minutes, and later ones join whenever they start.
WORKER_START_TIMEOUT_S = 600.0
MAX_START_TIMEOUT_S = 7 * 24 * 3600  # a week: a cluster that takes longer to give a worker is not coming
# --select useful judges this many candidates of each image together and keeps the least sure one that passes.
CANDIDATES_PER_ROUND = 4
MAX_CANDIDATES_PER_ROUND = 64


@dataclass(frozen=True)
class SynthesisOptions:
    model: str | None = field(default=None, metadata=NOT_IN_JOB)  # snapshot path; `genaug run`: the job's own
    out: str | None = None  # output folder or URI; None in a job: the [train] out folder's synth/
    n: int | None = 10_000  # images in all; None when per_class gives the counts
    per_class: str | None = None  # 'K' or 'CLASS=K,...'
    class_weights: str | None = None  # 'balance' tops up the small classes of `data`; or 'CLASS=W,...'
    classes: str | None = None  # 'CLASS,...': only these classes
    data: str | None = field(default=None, metadata=NOT_IN_JOB)  # real set spec, for balance and min_confidence
    shard_size: int | None = None  # images per shard; None: at most 10,000, so every worker gets 2 or more shards
    seed: int = 0  # image i comes from (seed, i) alone
    format: Literal["parquet", "png", "raw"] = "parquet"
    gpus: int | None = field(default=None, metadata=NOT_IN_JOB)  # GPU workers; None: every visible GPU
    workers: int | None = None  # CPU workers (no GPUs); None: one per GPU where there are GPUs, else one per CPU
    encode_processes: int | None = None  # per worker; 0: one encoder thread; None: the node's CPUs per GPU - 1
    address: str | None = field(default=None, metadata=NOT_IN_JOB)  # None: a private local Ray; or auto, HOST:PORT
    worker_start_timeout_s: float = WORKER_START_TIMEOUT_S  # with no worker started by then, the job fails
    resume: bool = field(default=False, metadata=NOT_IN_JOB)  # keep the finished shards that verify
    overwrite: bool = field(default=False, metadata=NOT_IN_JOB)  # replace a previous genaug output
    progress: bool = field(default=True, metadata=NOT_IN_JOB)  # the plan and a progress bar on stderr
    # A README.md dataset card for the Hugging Face Hub. Off by default: pyarrow and pandas read every file
    # of the folder they are given, so with a card they read the output's data/ rather than the output.
    card: bool = False
    min_confidence: float | None = None  # keep images the reference classifier of `data` is this sure of
    # 'useful': keep candidates the reference classifier of `data` labels right, inside their class's real spread,
    # each image the least sure of its round of select_candidates (selection.py); None: no such selection.
    select: Literal["useful"] | None = None
    select_candidates: int = CANDIDATES_PER_ROUND
    classifier: ClassifierConfig | None = field(default=None, metadata=NOT_IN_JOB)  # that classifier; None: default
    # Diffusion snapshots (cdm) only: their sampler's steps and guidance weight instead of the snapshot's own.
    steps: int | None = None  # sampler steps; more: closer to the model's best images, proportionally slower
    guidance: float | None = None  # classifier-free guidance weight; 0: plain conditional
    # cdm and cvae snapshots: variants of the real images of this spec's split in place of images from noise.
    variants_of: str | None = None
    per_image: int = 10  # variants of each source image at each strength
    strength: tuple[float, ...] = (0.5,)  # shares of the sampler's path a variant runs: 0 the source, 1 from noise
    mix_classes: bool = False  # render each variant under another class than its source's (class-mix arms)
    mix_pairs: str | None = None  # with mix_classes: 'SOURCE>TARGET,...', the only class pairs rendered
    # Write each image back at the size and depth of the pictures the model was trained on (gen_aug/data/form.py):
    # the padding cut off, 16-bit sources as 16-bit PNGs. For the user's own use: evaluate takes the model's size.
    restore: bool = False

    def __post_init__(self):
        require(self.n is None or self.n >= 1, "n", self.n, "1 or more")
        require(self.shard_size is None or self.shard_size >= 1, "shard_size", self.shard_size, "1 or more")
        require(0 <= self.seed <= MAX_SEED, "seed", self.seed, f"0 to {MAX_SEED} (2^63 - 1: torch seeds are int64)")
        require(self.workers is None or self.workers >= 1, "workers", self.workers, "1 or more")
        require(self.gpus is None or self.gpus >= 0, "gpus", self.gpus, "0 or more")
        require(self.encode_processes is None or self.encode_processes >= 0, "encode_processes",
                self.encode_processes, "0 or more")
        require(self.min_confidence is None or 0 <= self.min_confidence <= 1, "min_confidence", self.min_confidence,
                "a probability, 0 to 1")
        require(math.isfinite(self.worker_start_timeout_s) and 1 <= self.worker_start_timeout_s <= MAX_START_TIMEOUT_S,
                "worker_start_timeout_s", self.worker_start_timeout_s, f"1 to {MAX_START_TIMEOUT_S:,} seconds")
        require(self.select in (None, "useful"), "select", self.select, "'useful'")
        require(1 <= self.select_candidates <= MAX_CANDIDATES_PER_ROUND, "select_candidates", self.select_candidates,
                f"1 to {MAX_CANDIDATES_PER_ROUND}")
        require(self.steps is None or 1 <= self.steps <= 1000, "steps", self.steps, "1 to 1000")
        require(self.guidance is None or (math.isfinite(self.guidance) and self.guidance >= 0), "guidance",
                self.guidance, "0 or a finite weight above")
        require(self.per_image >= 1, "per_image", self.per_image, "1 or more")
        require(len(self.strength) >= 1 and len(set(self.strength)) == len(self.strength)
                and all(math.isfinite(s) and 0 <= s <= 1 for s in self.strength), "strength", self.strength,
                "distinct strengths from 0 to 1")


def check_options(options: SynthesisOptions) -> None:
    """What single fields cannot say: options that do not go together, and GPUs asked of a machine with none."""
    import torch

    from gen_aug.output.formats import get_format

    get_format(options.format)
    if options.model is None or options.out is None:
        raise GenaugError("synthesize: model and out are both needed (expected --model SNAPSHOT --out DIR)")
    if options.resume and options.overwrite:
        raise GenaugError("--resume and --overwrite: both given (expected at most one)")
    if options.mix_classes and options.variants_of is None:
        raise GenaugError("--mix-classes without --variants-of (expected --variants-of SPEC: it renders variants of "
                          "real images under other classes)")
    if options.select is not None and options.min_confidence is not None:
        raise GenaugError(f"--select {options.select} and --min-confidence: both given (expected one rule for "
                          "keeping candidates)")
    if options.mix_pairs is not None and not options.mix_classes:
        raise GenaugError(f"--mix-pairs {options.mix_pairs!r} without --mix-classes (expected --mix-classes too: the "
                          "pairs say which classes it renders under which)")
    if options.select is not None and options.mix_classes:
        raise GenaugError(f"--select {options.select} and --mix-classes: both given (expected --select without "
                          "--mix-classes: an image rendered under another class has no one right label to judge)")
    if options.restore and options.format == "raw":
        raise GenaugError("--restore with --format raw: raw shards hold the model's uint8 pixels (expected --format png "
                          "or parquet, whose PNGs can hold the source's size and 16-bit depth)")
    if options.gpus and options.address is None and not torch.cuda.is_available() and not _ray_already_here():
        raise no_gpus_error(options)  # the private Ray would see the same: say so before it starts
    if options.gpus and options.workers is not None:
        raise GenaugError(
            f"--workers {options.workers} with --gpus {options.gpus}: GPU jobs run one worker per GPU "
            "(expected --gpus 0 for CPU workers)"
        )


def no_gpus_error(options: SynthesisOptions) -> GenaugError:
    where = "here" if options.address is None else f"on the Ray cluster at {options.address}"
    return GenaugError(
        f"--gpus {options.gpus}: no CUDA device is visible {where} (expected --gpus 0, and --workers N for "
        "N CPU workers)"
    )


def _ray_already_here() -> bool:
    """Whether this process already joined a Ray (a notebook's, a test's), whose declared GPUs the job then uses."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()
