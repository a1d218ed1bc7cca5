"""The Ray actor that turns shard indices into written shards: a generator fills each shard, a hand-off encodes it.

Both are injected: by default the generator is the snapshot's model (through the --min-confidence
filter where the job has one) and the hand-off is picked from the encoder count, so `run_shard`
has one path and a benchmark can swap either without patching this module.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import resource
import tempfile
import threading
from concurrent.futures import BrokenExecutor
from typing import Protocol

import numpy as np
import torch

from gen_aug.checkpoint import load_snapshot
from gen_aug.models import one_step, with_sampler
from gen_aug.sampling import GENERATION_CHUNK, generate_uint8, images_drawn
from gen_aug.synthesis.handoff import start_handoff
from gen_aug.output.plan import Plan, Shard
from gen_aug.output.records import ShardRecord
from gen_aug.output.settings import JobSettings


class ShardImages(Protocol):
    def fill(self, shard: Shard, out: torch.Tensor) -> tuple[dict[str, np.ndarray] | None, list[int] | None]:
        """Fill uint8 `out` (shard.rows, C, H, W) with the shard's images; returns (the extra columns stored beside
        them, such as each one's latent index, or None; candidates per class, or None)."""


class ModelImages:
    """Image i from latent i of (seed, i) and its planned label: the unfiltered job."""

    def __init__(self, model: torch.nn.Module, plan: Plan, device: torch.device):
        self.model, self.plan, self.device = model, plan, device

    def fill(self, shard: Shard, out: torch.Tensor) -> tuple[None, None]:
        labels = torch.from_numpy(self.plan.labels(shard.start, shard.stop))
        generate_uint8(self.model, self.plan.seed, torch.arange(shard.start, shard.stop), labels, self.device, out=out)
        return None, None


class ShardWorker:
    """Loads the snapshot once, then generates whole shards and hands each to an encoder to write.

    Run with max_concurrency = shards_in_flight + 1: one call generates (under a lock, since the generator
    is the shared resource) while the others wait on their shard's encoding, and one slot answers the driver.
    """

    def __init__(self, snapshot_bytes: bytes, settings: JobSettings, out_uri: str, encode_processes: int,
                 torch_threads: int, classifier_weights: bytes | None = None, variant_sources=None, *,
                 images: ShardImages | None = None, handoff: str | None = None):
        use_cuda = settings.device == "cuda" and torch.cuda.is_available()
        self.device = torch.device("cuda" if use_cuda else "cpu")
        if not use_cuda:
            torch.set_num_threads(torch_threads)
        self.model = with_sampler(_load_model(snapshot_bytes, self.device), settings.sampler)
        self.plan = settings.plan
        self.images = images or _default_images(self.model, settings, classifier_weights, variant_sources,
                                                self.device)
        self.generating = threading.Lock()
        self.drawn_before: int | None = None  # images_drawn() when the shard being generated began
        config = self.model.config
        rows = min(self.plan.shard_size, self.plan.n)  # the largest shard there is
        shard_shape = (rows, config.channels, config.resolution, config.resolution)
        self.start_handoff = functools.partial(start_handoff, encode_processes, out_uri, self.plan, settings.format,
                                               shard_shape, pin_memory=use_cuda, kind=handoff)
        self.handoff = self.start_handoff()
        self.retired: list = []  # hand-offs whose encoder pool broke, closed with the worker
        self.replacing = threading.Lock()
        if use_cuda:  # load kernels and pick algorithms now, not while the first shard is timed
            chunk = torch.arange(GENERATION_CHUNK["cuda"])
            with one_step(self.model):
                generate_uint8(self.model, 0, chunk, chunk % config.num_classes, self.device)
        self.info = {
            "node_ip": _node_ip(),
            "pid": os.getpid(),
            "device": str(self.device),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "torch_threads": torch.get_num_threads(),
            "encoders": f"{encode_processes} process{'es' if encode_processes > 1 else ''}" if encode_processes
                        else "1 thread",
            "handoff": self.handoff.description,
            "shards_in_flight": self.handoff.shards_in_flight,
        }

    def describe(self) -> dict:
        return self.info

    def drawing(self) -> int:
        """Images drawn so far for the shard being generated (0 between shards): the driver shows it, so a long
        shard does not sit at 0% until it lands."""
        before = self.drawn_before
        return 0 if before is None else images_drawn() - before

    def final_stats(self) -> dict:
        """This actor's peak resident memory (encoder processes not included) and encoder pools replaced."""
        return {"peak_rss_bytes": peak_rss_bytes(), "encoder_restarts": len(self.retired)}

    def close(self) -> None:
        """Stop the encoders and free the slots; the driver calls this before it kills a worker that finished."""
        for handoff in [*self.retired, self.handoff]:
            handoff.close()

    def run_shard(self, shard_idx: int) -> ShardRecord:
        """Generate one shard, then encode and write it in an encoder; returns its record."""
        shard = self.plan.shard(shard_idx)

        passed = {}

        def fill(out: torch.Tensor) -> tuple:
            with self.generating:
                self.drawn_before = images_drawn()
                try:
                    columns, candidates = self.images.fill(shard, out)
                finally:
                    self.drawn_before = None
            if columns is not None and "useful" in columns:  # --select useful: which images passed, per class
                labels = self.plan.labels(shard.start, shard.stop)[columns["useful"] == 1]
                passed["per_class"] = tuple(np.bincount(labels, minlength=len(self.plan.class_names)).tolist())
            return columns, candidates

        handoff = self.handoff
        try:
            record, candidates = handoff.write(shard, fill)
        except BrokenExecutor:  # an encoder process died: the shard's bytes depend on its index alone, so redo it
            self._replace(handoff)
            record, candidates = self.handoff.write(shard, fill)
        if candidates is None:
            return record
        return dataclasses.replace(record, candidates=tuple(candidates), passed=passed.get("per_class"))


    def _replace(self, broken) -> None:
        """Start fresh encoders in place of a broken pool, once however many shards saw it break."""
        with self.replacing:
            if self.handoff is broken:
                broken.stop_encoders()
                self.retired.append(broken)
                self.handoff = self.start_handoff()


def _load_model(snapshot_bytes: bytes, device: torch.device) -> torch.nn.Module:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.safetensors")
        with open(path, "wb") as stream:
            stream.write(snapshot_bytes)
        return load_snapshot(path, device=device).model


def _default_images(model, settings: JobSettings, classifier_weights: bytes | None, variant_sources,
                    device) -> ShardImages:
    judge = None
    if settings.filter is not None:
        from gen_aug.classifiers.classifier import load_classifier

        judge = load_classifier(classifier_weights, settings.filter.classifier, device)
    if settings.variants is not None:
        from gen_aug.synthesis.variant_job import VariantImages

        return VariantImages(model, settings.plan, settings.variants, variant_sources, device, judge, settings.filter)
    if settings.filter is None:
        return ModelImages(model, settings.plan, device)
    if settings.filter.select == "useful":
        from gen_aug.synthesis.selection import UsefulImages

        return UsefulImages(model, judge, settings.plan, settings.filter, device)
    from gen_aug.synthesis.filter import ConfidentImages

    return ConfidentImages(model, judge, settings.plan, settings.filter.min_confidence, device)


def _node_ip() -> str:
    import ray

    return ray.util.get_node_ip_address()


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
