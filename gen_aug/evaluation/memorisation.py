"""Memorisation: how many synthetic images sit closer to a real training image than real training images sit to each other."""

from __future__ import annotations

import numpy as np
import torch

from gen_aug.data import LabelledImages
from gen_aug.classifiers.classifier import Classifier
from gen_aug.evaluation.metrics import sample_indices
from gen_aug.evaluation.result import Memorisation, NearestPair, NearestReal

PERCENTILE = 5.0  # a synthetic image nearer a real one than 95% of real images are to their nearest neighbour
CLOSEST_PAIRS = 8  # pairs kept for the figure, per space
CHUNK = 1024  # rows of a distance matrix computed at once


def memorisation(
    judge: Classifier,
    real_train: LabelledImages,
    real_test: LabelledImages,
    synthetic: LabelledImages,
    synthetic_indices: np.ndarray,
    *,
    sample_size: int,
    sample_seed: int = 0,
) -> Memorisation:
    """The share of synthetic images (those at `synthetic_indices`) whose nearest real train image is that close.

    "That close" is the PERCENTILE of real train images' distances to their nearest other train
    image, measured for at most `sample_size` of them against all; in the judge's features and in
    pixels (scaled to [0, 1]), overall and per synthetic class. The same share of (at most
    `sample_size`) real test images says what images that copy nothing give.
    """
    chosen = synthetic.select(synthetic_indices)
    test = real_test.select(sample_indices(len(real_test.images), sample_size, sample_seed))
    probes = sample_indices(len(real_train.images), sample_size, sample_seed)
    spaces = {
        "features": [judge.embed(data.images) for data in (real_train, chosen, test)],
        "pixels": [_pixels(data.images) for data in (real_train, chosen, test)],
    }
    found = {
        space: _nearest_real(space, real, fake, held_out, probes, chosen.labels, synthetic_indices,
                             real_train.num_classes)
        for space, (real, fake, held_out) in spaces.items()
    }
    return Memorisation(
        percentile=PERCENTILE, synthetic_images=len(chosen.images), real_images=len(real_train.images), **found
    )


def _pixels(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255


def _nearest_real(
    space: str,
    real: np.ndarray,
    synthetic: np.ndarray,
    held_out: np.ndarray,
    probes: np.ndarray,
    synthetic_labels: np.ndarray,
    synthetic_indices: np.ndarray,
    num_classes: int,
) -> NearestReal:
    real_tensor = torch.from_numpy(real).float()
    # A probe's own row is excluded by index, not by distance 0: an exact duplicate elsewhere still counts.
    train_distances, _ = nearest(real_tensor[probes], real_tensor, exclude=torch.from_numpy(probes))
    threshold = float(np.percentile(train_distances.numpy(), PERCENTILE))
    distances, neighbours = nearest(torch.from_numpy(synthetic).float(), real_tensor)
    close = (distances <= threshold).numpy()
    per_class = tuple(
        float(close[synthetic_labels == label].mean()) if (synthetic_labels == label).any() else None
        for label in range(num_classes)
    )
    order = torch.argsort(distances, stable=True)[:CLOSEST_PAIRS]
    held_out_distances, _ = nearest(torch.from_numpy(held_out).float(), real_tensor)
    return NearestReal(
        space=space, threshold=threshold, share_below=float(close.mean()) if len(close) else 0.0, per_class=per_class,
        real_test_share_below=float((held_out_distances <= threshold).double().mean()),
        closest=tuple(
            NearestPair(synthetic_index=int(synthetic_indices[i]), real_index=int(neighbours[i]),
                        distance=float(distances[i]))
            for i in order
        ),
    )


def nearest(points: torch.Tensor, others: torch.Tensor, exclude: torch.Tensor | None = None):
    """(distance, index) of each point's nearest row of `others`; row exclude[i] is never point i's neighbour."""
    distances, indices = [], []
    for start in range(0, len(points), CHUNK):
        block = torch.cdist(points[start : start + CHUNK], others).clamp_(min=0)  # (chunk, len(others))
        if exclude is not None:
            rows = torch.arange(len(block))
            block[rows, exclude[start : start + CHUNK]] = float("inf")
        value, index = block.min(dim=1)
        distances.append(value)
        indices.append(index)
    if not distances:
        return torch.zeros(0), torch.zeros(0, dtype=torch.int64)
    return torch.cat(distances), torch.cat(indices)
