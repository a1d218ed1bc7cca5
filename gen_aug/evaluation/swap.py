"""The variants arms' draw: each real image a batch draws is swapped for one of its own variants with probability p.

DA-Fusion's recipe (Trabucco et al., 2024). The batch order, the labels and so every class's share
stay those of the real set, so "looks synthetic" is never a cue for a class; only what the image
of a drawn real example looks like changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gen_aug.data import LabelledImages
from gen_aug.errors import GenaugError


@dataclass(frozen=True)
class VariantPool:
    """The variants of every real train image, found by their source index, and the swap probability."""

    images: torch.Tensor  # uint8 (M, C, H, W): every variant, grouped by source
    first: torch.Tensor  # int64 (N + 1,): the variants of real image i are rows first[i] to first[i + 1] - 1
    probability: float

    @classmethod
    def of(cls, variants: LabelledImages, source_index: np.ndarray, real_count: int,
           probability: float) -> "VariantPool":
        if len(source_index) != len(variants.images) or (len(source_index) and (
                source_index.min() < 0 or source_index.max() >= real_count)):
            raise GenaugError(f"{variants.description}: source indices outside the real train split's 0 to "
                              f"{real_count - 1} (expected variants of that split)")
        order = np.argsort(source_index, kind="stable")
        first = np.concatenate([[0], np.cumsum(np.bincount(source_index, minlength=real_count))])
        return cls(torch.from_numpy(np.ascontiguousarray(variants.images[order])), torch.from_numpy(first),
                   probability)

    def variants_per_image(self) -> tuple[int, int]:
        """The fewest and most variants any real image has."""
        counts = self.first[1:] - self.first[:-1]
        return int(counts.min()), int(counts.max())

    def swap(self, index: torch.Tensor, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """`batch` (the real images at `index`) with each swapped for one of its variants with the probability.

        Two draws per row from `generator`, whether or not it swaps, so one row's draw never shifts another's.
        """
        index = index.cpu()
        start, count = self.first[index], self.first[index + 1] - self.first[index]
        coin, pick = torch.rand(len(index), generator=generator), torch.rand(len(index), generator=generator)
        swapped = (coin < self.probability) & (count > 0)
        if not bool(swapped.any()):
            return batch
        rows = start + torch.minimum((pick * count).long(), (count - 1).clamp(min=0))  # pick < 1: a guard for rounding
        batch = batch.clone()
        batch[swapped.to(batch.device)] = self.images[rows[swapped]].to(batch.device)
        return batch


def check_variants_of(variants: dict, real_train: LabelledImages, synthetic: str) -> None:
    """A variant output's sources must be the real train split the arms train on, image for image."""
    if variants["data_sha256"] != real_train.fingerprint:
        raise GenaugError(
            f"--synthetic {synthetic!r}: variants of {variants['data']}, sha256 {variants['data_sha256'][:16]}... "
            f"(expected variants of --real's train split {real_train.description}, sha256 "
            f"{real_train.fingerprint[:16]}...: genaug synthesize --variants-of that spec)"
        )
