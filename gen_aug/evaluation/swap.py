"""The variants arms' draw: each real image a batch draws is swapped for one of its own variants with probability p.

DA-Fusion's recipe (Trabucco et al., 2024). The batch order, the labels and so every class's share
stay those of the real set, so "looks synthetic" is never a cue for a class; only what the image
of a drawn real example looks like changes. The class-mix arms swap in variants rendered under
another class (synthesize --mix-classes), each with Diff-Mix's soft label (Wang et al., 2024): a
variant of a class-i image rendered under class j at strength s is (1 - s^gamma) class i and
s^gamma class j, since the further the sampler ran from the real image, the more of j it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gen_aug.data import LabelledImages
from gen_aug.errors import GenaugError


@dataclass(frozen=True)
class VariantProvenance:
    """Each row of a --variants-of output: its source (a real train image), that image's class, its strength."""

    source_index: np.ndarray  # int64
    source_label: np.ndarray  # int64
    strength: np.ndarray  # float64
    mix_classes: bool  # rendered under other classes than their sources'


def soft_labels(source_label: np.ndarray, rendered_label: np.ndarray, strength: np.ndarray, gamma: float,
                num_classes: int) -> np.ndarray:
    """float32 (N, classes): (1 - s^gamma) on the source's class plus s^gamma on the rendered one; each row sums to 1."""
    weight = np.power(np.asarray(strength, dtype=np.float64), gamma)
    rows = np.arange(len(weight))
    targets = np.zeros((len(weight), num_classes), dtype=np.float64)
    np.add.at(targets, (rows, np.asarray(source_label)), 1 - weight)
    np.add.at(targets, (rows, np.asarray(rendered_label)), weight)  # add.at: the same class gets both shares
    return targets.astype(np.float32)


@dataclass(frozen=True)
class VariantPool:
    """The variants of every real train image, found by their source index, and the swap probability."""

    images: torch.Tensor  # uint8 (M, C, H, W): every variant, grouped by source
    first: torch.Tensor  # int64 (N + 1,): the variants of real image i are rows first[i] to first[i + 1] - 1
    probability: float
    targets: torch.Tensor | None = None  # float32 (M, classes): each variant's soft label; None: its source's label

    @classmethod
    def of(cls, variants: LabelledImages, source_index: np.ndarray, real_count: int, probability: float,
           targets: np.ndarray | None = None) -> "VariantPool":
        if len(source_index) != len(variants.images) or (len(source_index) and (
                source_index.min() < 0 or source_index.max() >= real_count)):
            raise GenaugError(f"{variants.description}: source indices outside the real train split's 0 to "
                              f"{real_count - 1} (expected variants of that split)")
        order = np.argsort(source_index, kind="stable")
        first = np.concatenate([[0], np.cumsum(np.bincount(source_index, minlength=real_count))])
        return cls(torch.from_numpy(np.ascontiguousarray(variants.images[order])), torch.from_numpy(first),
                   probability, None if targets is None else torch.from_numpy(np.ascontiguousarray(targets[order])))

    def variants_per_image(self) -> tuple[int, int]:
        """The fewest and most variants any real image has."""
        counts = self.first[1:] - self.first[:-1]
        return int(counts.min()), int(counts.max())

    def swap(self, index: torch.Tensor, batch: torch.Tensor, labels: torch.Tensor,
             generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, targets): `batch` (the real images at `index`, of class `labels`) with each swapped for one of its
        variants with the probability, and the labels to train on: `labels` itself, or with soft targets each swapped
        row's own. Two draws per row from `generator`, whether or not it swaps, so one row's draw never shifts another's.
        """
        index = index.cpu()
        start, count = self.first[index], self.first[index + 1] - self.first[index]
        coin, pick = torch.rand(len(index), generator=generator), torch.rand(len(index), generator=generator)
        swapped = (coin < self.probability) & (count > 0)
        if self.targets is not None:
            labels = torch.nn.functional.one_hot(labels, self.targets.shape[1]).float()
        if not bool(swapped.any()):
            return batch, labels
        rows = start + torch.minimum((pick * count).long(), (count - 1).clamp(min=0))  # pick < 1: a guard for rounding
        batch, on_device = batch.clone(), swapped.to(batch.device)
        batch[on_device] = self.images[rows[swapped]].to(batch.device)
        if self.targets is not None:
            labels[on_device] = self.targets[rows[swapped]].to(labels.device)
        return batch, labels


def check_variants_of(variants: dict, real_train: LabelledImages, synthetic: str) -> None:
    """A variant output's sources must be the real train split the arms train on, image for image."""
    if variants["data_sha256"] != real_train.fingerprint:
        raise GenaugError(
            f"--synthetic {synthetic!r}: variants of {variants['data']}, sha256 {variants['data_sha256'][:16]}... "
            f"(expected variants of --real's train split {real_train.description}, sha256 "
            f"{real_train.fingerprint[:16]}...: genaug synthesize --variants-of that spec)"
        )
