"""One training loop for every model family: seeded, resumable exactly, with previews, a JSON-lines log and snapshots."""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gen_aug.atomic import write_atomic
from gen_aug.checkpoint import save_snapshot
from gen_aug.config import Job, TrainConfig
from gen_aug.data import LabelledImages, load_data
from gen_aug.errors import GenaugError
from gen_aug.grid import class_rows, save_grid
from gen_aug.images import to_float
from gen_aug.models import build_model
from gen_aug.units import duration

SNAPSHOT_NAME = "model.safetensors"
STATE_NAME = "train_state.pt"
LOG_NAME = "log.jsonl"
STATE_VERSION = 1
PROBE_STEPS = 3  # timed after one untimed step, which pays for first-call setup


@dataclass(frozen=True)
class TrainSummary:
    out: Path
    first_step: int  # 0, or where a resumed run started
    steps: int  # total steps the model has now
    seconds: float
    images_per_sec: float  # real images seen per second of this run's wall time (the bar's img/s)
    losses: dict  # the last logged averages
    preview: Path | None


def train(
    data: LabelledImages,
    family: str,
    model_options: Mapping,
    settings: TrainConfig,
    resume: bool = False,
    show_progress: bool = True,
) -> TrainSummary:
    """Train `family` on `data` as `settings` say, writing everything under `settings.out`."""
    if settings.out is None:
        raise GenaugError("--out: missing (expected --out DIR, or out = \"DIR\" in the job's [train] section)")
    out = Path(settings.out)
    check_out(out, resume)
    check_data(data)
    device = pick_device(settings.device)
    model, trainer = seeded_model(data, family, model_options, settings, device)
    batch_rng = torch.Generator().manual_seed(settings.seed)  # which real images each step sees
    rng = torch.Generator(device).manual_seed(settings.seed + 1)  # latents, noise, augmentation
    first_step = 0
    if resume:
        first_step = restore(out, data, model, trainer, batch_rng, rng, device)
    truncate_log(out / LOG_NAME, first_step)  # a run that died before its first checkpoint left lines too
    if first_step >= settings.steps:
        raise GenaugError(f"--resume: {out} already has {first_step} steps (expected --steps above {first_step})")
    out.mkdir(parents=True, exist_ok=True)
    if show_progress:  # before the first step: a long run says so while it can still be stopped for little
        print(rough_time(data, family, model_options, settings, device, settings.steps - first_step), file=sys.stderr)
    images = to_float(data.images).to(device)  # (N, C, H, W) in [-1, 1], all on the device: the sets are small
    labels = torch.from_numpy(data.labels).to(device)
    sums: dict[str, torch.Tensor] = {}
    preview, losses, started = None, {}, time.perf_counter()
    interval_start, interval_steps = started, 0
    # smoothing=0: tqdm's rate and ETA are averages over the whole run, steady through previews and checkpoints.
    bar = tqdm(total=settings.steps, initial=first_step, unit="step", disable=not show_progress, dynamic_ncols=True,
               smoothing=0)
    for step in range(first_step + 1, settings.steps + 1):
        batch = torch.randint(len(images), (settings.batch_size,), generator=batch_rng).to(device)
        for name, value in trainer.step(images[batch], labels[batch], rng).items():
            sums[name] = sums.get(name, 0) + value
        interval_steps += 1
        bar.update(1)
        if step % settings.log_every == 0 or step == settings.steps:
            now = time.perf_counter()
            losses = {name: round(float(total) / interval_steps, 5) for name, total in sums.items()}
            interval_speed = interval_steps * settings.batch_size / (now - interval_start)
            append_log(out / LOG_NAME, {"step": step, **losses, "interval_images_per_sec": round(interval_speed, 1),
                                        "seconds": round(now - started, 2)})
            speed = _images_per_sec(step - first_step, settings.batch_size, now - started)
            bar.set_postfix({**losses, "img/s": f"{speed:.0f}"}, refresh=False)
            sums, interval_start, interval_steps = {}, now, 0
        if step % settings.preview_every == 0 or step == settings.steps:
            preview = _save_preview(model, data, settings, device, out / f"preview_{step:06d}.png")
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            save_run(out, data, model, trainer, batch_rng, rng, step, settings)
    seconds = time.perf_counter() - started
    images_per_sec = _images_per_sec(settings.steps - first_step, settings.batch_size, seconds)
    # The bar's last figure is the summary's: taken after the final preview and checkpoint, as the summary is.
    bar.set_postfix({**losses, "img/s": f"{images_per_sec:.0f}"})
    bar.close()
    return TrainSummary(out, first_step, settings.steps, seconds, images_per_sec, losses, preview)


def _images_per_sec(steps: int, batch_size: int, seconds: float) -> float:
    """Real images per second of the run's wall time so far: the one rate the bar and the summary both show."""
    return steps * batch_size / seconds


def rough_time(data: LabelledImages, family: str, model_options: Mapping, settings: TrainConfig,
               device: torch.device, steps: int) -> str:
    """What `steps` steps will train and roughly how long here, timed on a separately seeded copy of the model:
    the run's own model, optimiser and random streams are untouched."""
    cuda = [torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):  # in case a family's step draws from the global generators
        _, trainer = seeded_model(data, family, model_options, settings, device)
        seconds = steps * probe_step_seconds(trainer, data, settings.batch_size, device)
    return (f"steps        {steps:,} steps of a {family} on {len(data.images):,} images, {settings.batch_size} per step; "
            f"roughly {duration(seconds)} here")


def probe_step_seconds(trainer, data: LabelledImages, batch_size: int, device: torch.device) -> float:
    """Seconds per training step of `trainer` here, on a batch of `data`'s first images."""
    generator = torch.Generator(device).manual_seed(0)
    batch = np.arange(batch_size) % len(data.images)
    images = to_float(data.images[batch]).to(device)
    labels = torch.from_numpy(data.labels[batch]).to(device)
    trainer.step(images, labels, generator)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(PROBE_STEPS):
        trainer.step(images, labels, generator)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / PROBE_STEPS


def _save_preview(model, data: LabelledImages, settings: TrainConfig, device: torch.device, path: Path) -> Path:
    rows = class_rows(model, settings.preview_per_class, settings.seed + 2, device)
    return save_grid(rows, list(data.class_names), path)


def seeded_model(data: LabelledImages, family: str, model_options: Mapping, settings: TrainConfig,
                  device: torch.device) -> tuple:
    """(model, trainer) for `data`'s image shape and classes, initialised from the run's seed."""
    use_bf16 = settings.precision == "bf16" or (settings.precision == "auto" and device.type == "cuda")
    channels, resolution, _ = data.shape
    config = {"resolution": resolution, "channels": channels, "num_classes": data.num_classes, **model_options}
    with torch.random.fork_rng(devices=[]):  # seeded initialisation without changing the caller's global RNG
        torch.default_generator.manual_seed(settings.seed)
        model = build_model(family, config)
        return model, model.trainer(len(data.images), device, torch.bfloat16 if use_bf16 else None)


def check_out(out: Path, resume: bool) -> None:
    """A run folder is never overwritten: an existing model continues only with --resume."""
    blocking = next((path for path in (out, *out.parents) if path.exists() and not path.is_dir()), None)
    if blocking is not None:
        raise GenaugError(f"--out {out}: {blocking} is a file (expected a folder for the run)")
    if resume:
        if not (out / STATE_NAME).is_file():
            raise GenaugError(f"--resume: {out} has no {STATE_NAME} to resume from (expected the --out of an earlier run)")
        return
    found = [name for name in (SNAPSHOT_NAME, STATE_NAME) if (out / name).exists()]
    if found:
        raise GenaugError(
            f"--out {out}: already holds a trained model ({', '.join(found)}); "
            "pass --resume to continue it up to --steps, or choose a new --out"
        )


def check_data(data: LabelledImages) -> None:
    channels, height, width = data.shape
    if height != width:
        raise GenaugError(f"data {data.description}: images are {height}x{width} (expected square images; add ?resolution=R)")
    present = int(np.count_nonzero(data.class_counts()))
    if present < 2:
        raise GenaugError(f"data {data.description}: images of {present} class (expected 2 or more classes to condition on)")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GenaugError("--device cuda: no CUDA device is visible (expected --device cpu or auto)")
    return torch.device(name)


def save_run(out, data, model, trainer, batch_rng, rng, step, settings) -> None:
    """Resume state first, then the snapshot: a crash between them leaves a state a resume can use."""
    state = {
        "format_version": STATE_VERSION,
        "family": model.family,
        "config": dataclasses.asdict(model.config),
        "fingerprint": data.fingerprint,
        "step": step,
        "trainer": trainer.state_dict(),
        "batch_rng": batch_rng.get_state(),
        "rng": rng.get_state(),
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(out / STATE_NAME, buffer.getvalue())
    meta = {
        "class_names": list(data.class_names),
        "data": {"description": data.description, "fingerprint": data.fingerprint},
        "steps": step,
        "seed": settings.seed,
        "batch_size": settings.batch_size,
    }
    save_snapshot(out / SNAPSHOT_NAME, model, meta)


def load_state(path: Path, device: torch.device) -> dict:
    """Read resume state with weights_only=True: tensors and plain containers only, never pickled code."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # unpickling refusals, truncation and zip errors all mean an unusable file
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
        raise GenaugError(f"resume state {path}: not a readable genaug train state ({first_line[:200]})") from None
    if not isinstance(state, dict) or state.get("format_version") != STATE_VERSION:
        raise GenaugError(f"resume state {path}: not a genaug train state of format version {STATE_VERSION}")
    return state


def restore(out: Path, data, model, trainer, batch_rng, rng, device) -> int:
    path = out / STATE_NAME
    state = load_state(path, device)
    config = dataclasses.asdict(model.config)
    if state["family"] != model.family or state["config"] != config:
        raise GenaugError(
            f"--resume: {path} trained a {state['family']} with {state['config']} "
            f"(expected the same model as now: {model.family} with {config})"
        )
    if state["fingerprint"] != data.fingerprint:
        raise GenaugError(f"--resume: {path} was trained on other data (fingerprint {state['fingerprint'][:16]}, now {data.fingerprint[:16]})")
    trainer.load_state_dict(state["trainer"])
    batch_rng.set_state(state["batch_rng"].cpu())
    rng.set_state(state["rng"].cpu())
    return state["step"]


def append_log(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")


def truncate_log(path: Path, last_step: int) -> None:
    """Drop lines logged after the resume state was written, so the log reads as one uninterrupted run."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        step = _logged_step(line)
        if step is not None and step <= last_step:
            kept.append(line + "\n")
    write_atomic(path, "".join(kept).encode())


def _logged_step(line: str) -> int | None:
    """The step of a log line; None for a line cut short by a crash."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def read_log(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def train_job(job: Job, resume: bool = False, show_progress: bool = True) -> TrainSummary:
    """Load the job's data and train its model: what `genaug train` runs."""
    return train(load_data(job.data.spec), job.model.family, job.model.options, job.train, resume, show_progress)


def describe_summary(summary: TrainSummary) -> str:
    start = f"resumed at step {summary.first_step}, " if summary.first_step else ""
    losses = ", ".join(f"{name} {value:.3f}" for name, value in summary.losses.items())
    lines = [
        f"trained      {summary.steps:,} steps ({start}{summary.seconds:.1f} s, {summary.images_per_sec:,.0f} images/s)",
        f"losses       {losses}",
        f"snapshot     {summary.out / SNAPSHOT_NAME}",
        f"resume state {summary.out / STATE_NAME}",
        f"log          {summary.out / LOG_NAME}",
    ]
    if summary.preview is not None:
        lines.append(f"preview      {summary.preview}")
    return "\n".join(lines)
