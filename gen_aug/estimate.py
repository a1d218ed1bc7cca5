"""What a job will cost on this machine, before it runs: short timed probes of each stage, scaled to the job.

A training step, a few generated images and a few classifier steps are timed on the job's own data
and model; each stage's estimate is its count of those (steps, images, classifier steps over the
runs at once) times the probe. Rough by design (caches, warm-up, Ray's start and other load are left
out): enough to tell minutes from hours before the hours are spent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from gen_aug.config import Job
from gen_aug.data import LabelledImages
from gen_aug.evaluation.parallel import seconds_per_classifier_step
from gen_aug.units import duration

PROBE_IMAGES = 8


@dataclass(frozen=True)
class StageEstimate:
    stage: str
    work: str  # what it does, in words
    seconds: float  # roughly, on this machine

    def line(self) -> str:
        return f"{self.stage:<11} {self.work}; about {duration(self.seconds)}"


def estimate_job(job: Job, data: LabelledImages, images: int, runs: int, jobs: int) -> list[StageEstimate]:
    """Each stage of `job` with its rough time here: `images` the synthesis makes, `runs` classifier runs (arms x
    seeds, TSTR and any grid's), `jobs` of them at once."""
    from gen_aug.train import pick_device, probe_step_seconds, seeded_model

    device = pick_device(job.train.device)
    model, trainer = seeded_model(data, job.model.family, job.model.options, job.train, device)
    step_s = probe_step_seconds(trainer, data, job.train.batch_size, device)
    image_s = _image_seconds(model.eval(), data.num_classes, device)
    classifier_s = seconds_per_classifier_step(data, job.evaluate.classifier_config(), device)
    classifier_steps = runs * job.evaluate.steps
    return [
        StageEstimate("train", f"{job.train.steps:,} steps of a {job.model.family} on {len(data.images):,} images",
                      job.train.steps * step_s),
        StageEstimate("synthesize", f"{images:,} images", images * image_s),
        StageEstimate("evaluate", f"{runs} classifier runs of {job.evaluate.steps:,} steps, {jobs} at once",
                      classifier_steps * classifier_s / max(1, min(jobs, runs))),
    ]


def _image_seconds(model: torch.nn.Module, num_classes: int, device: torch.device) -> float:
    with torch.inference_mode():
        z = torch.randn(PROBE_IMAGES, model.z_dim, device=device)
        labels = torch.arange(PROBE_IMAGES, device=device) % num_classes
        started = time.perf_counter()
        model.generate(z, labels)
    return (time.perf_counter() - started) / PROBE_IMAGES
