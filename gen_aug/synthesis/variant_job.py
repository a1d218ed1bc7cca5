"""--variants-of: a synthesis job whose images are variants of real ones, each row naming its source.

The plan's class counts are the sources' times the variants per image times the strengths, so every
class keeps its real share. Row g takes its label from the plan as in any job; its rank among its
class's rows picks (strength, variant, source): a class's sources go round fastest, then the
variant numbers, then the strengths. So a row's image depends on its index alone, as an image from
noise does, and every shard holds close to the job's class mix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gen_aug.errors import GenaugError
from gen_aug.synthesis.plan import Plan, Shard, check_size
from gen_aug.synthesis.settings import VariantSettings
from gen_aug.variants import MAX_VARIANTS_PER_IMAGE, check_can_vary, variants_uint8

# Options that pick images from noise: a variant job's images follow from its sources instead.
_NOT_WITH_VARIANTS = {"per_class": "--per-class", "class_weights": "--class-weights", "classes": "--classes",
                      "min_confidence": "--min-confidence"}


@dataclass(frozen=True)
class VariantSources:
    """The real images a job varies: uint8 (N, C, H, W) and their int64 labels, in their split's order."""

    images: np.ndarray
    labels: np.ndarray


def plan_variants(options, snapshot, shard_size: int) -> tuple[Plan, VariantSettings, VariantSources]:
    """The plan, settings and source images of a --variants-of job; every bad input is a one-line GenaugError."""
    from gen_aug.checkpoint import require_snapshot_data
    from gen_aug.data import load_data, parse_spec

    check_can_vary(snapshot.model, f"--model {options.model!r}")
    given = [flag for key, flag in _NOT_WITH_VARIANTS.items() if getattr(options, key) is not None]
    if given:
        raise GenaugError(f"--variants-of and {given[0]}: both given (expected the variants' count to follow from "
                          "the source images, --per-image and --strength alone)")
    if not 1 <= options.per_image <= MAX_VARIANTS_PER_IMAGE:
        raise GenaugError(f"--per-image {options.per_image}: out of range (expected 1 to {MAX_VARIANTS_PER_IMAGE:,})")
    spec = parse_spec(options.variants_of)
    sources = load_data(spec)
    require_snapshot_data(sources, snapshot.meta, f"--variants-of {options.variants_of!r}")
    source_counts = tuple(int(c) for c in sources.class_counts())
    repeats = options.per_image * len(options.strength)
    counts = tuple(repeats * c for c in source_counts)
    if options.n is not None and options.n != sum(counts):
        raise GenaugError(
            f"--n {options.n} and --variants-of: disagree ({len(sources.labels):,} source images x {repeats} make "
            f"{sum(counts):,}; expected --n left out or equal)"
        )
    check_size(sum(counts), shard_size)
    settings = VariantSettings(sources.description, spec.split, sources.fingerprint, source_counts,
                               options.per_image, tuple(options.strength))
    plan = Plan(options.seed, shard_size, sources.class_names, counts)
    return plan, settings, VariantSources(sources.images, sources.labels)


def variant_rows(plan: Plan, variants: VariantSettings, source_labels: np.ndarray, start: int,
                 stop: int) -> dict[str, np.ndarray]:
    """The provenance of rows start..stop-1, as the columns stored beside them (the `label` column says which class
    each was rendered under)."""
    labels = plan.labels(start, stop)
    ranks = plan.class_ranks(start, stop)
    counts = np.asarray(variants.source_counts, dtype=np.int64)[labels]
    order = np.argsort(source_labels, kind="stable")  # each class's sources, in split order
    first_of_class = np.cumsum(variants.source_counts) - np.asarray(variants.source_counts)
    source_index = order[first_of_class[labels] + ranks % counts]
    return {
        "source_split": np.full(len(labels), variants.split, dtype=object),
        "source_index": source_index.astype(np.int64),
        "source_label": np.asarray(source_labels, dtype=np.int64)[source_index],
        "variant": (ranks // counts) % variants.per_image,
        "strength": np.asarray(variants.strengths, dtype=np.float64)[ranks // (counts * variants.per_image)],
    }


class VariantImages:
    """A shard of variants: each row's source image noised and denoised at its strength, under its planned class."""

    def __init__(self, model: torch.nn.Module, plan: Plan, variants: VariantSettings, sources: VariantSources,
                 device: torch.device):
        check_can_vary(model, "variants")
        self.model, self.plan, self.variants, self.sources, self.device = model, plan, variants, sources, device

    def fill(self, shard: Shard, out: torch.Tensor) -> tuple[dict[str, np.ndarray], None]:
        columns = variant_rows(self.plan, self.variants, self.sources.labels, shard.start, shard.stop)
        labels = self.plan.labels(shard.start, shard.stop)
        for strength in self.variants.strengths:
            rows = np.flatnonzero(columns["strength"] == strength)
            if len(rows):
                source_index = columns["source_index"][rows]
                made = variants_uint8(self.model, self.sources.images[source_index], source_index,
                                      columns["variant"][rows], labels[rows], strength, self.plan.seed, self.device)
                out[torch.from_numpy(rows)] = made.to(out.device)
        return columns, None
