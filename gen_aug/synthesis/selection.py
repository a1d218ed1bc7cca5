"""--select useful: each image the least sure of its candidates that the judge still puts in their class, inside that class's real spread.

Selective augmentation (Xue et al.) keeps the generated images that a classifier of the real images
labels correctly and that lie near their real class in its feature space, and prefers among them
the ones the classifier is least sure of: the images that teach it something, not the ones it
already knows. Here a candidate passes when the judge's most probable class is its own and its
distance to that class's centroid of real train features is at most the 95th percentile of the real
train images' own distances. Candidates are judged in rounds of a fixed number per image; the
image keeps the passing candidate of least own-class probability from its first round with any;
one with none in MAX_ROUNDS rounds keeps its most class-like candidate, and its `useful` column says 0.

Candidate a of image i is an index of the job's own making (latent i + a * n from noise, variant
v + a * K of a source): what an image becomes depends on its index alone, never on the shard's
other images or the worker that drew it, and the candidate kept is stored beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from gen_aug.errors import GenaugError
from gen_aug.output.plan import Plan, Shard

if TYPE_CHECKING:
    from gen_aug.classifiers.classifier import Classifier
    from gen_aug.output.settings import FilterSettings

SPREAD_PERCENTILE = 95.0  # a candidate farther from its class centroid than this share of real images is off-class
# Rounds an image is given to find a passing candidate. A variant of a real image the judge itself gets wrong
# may never pass (by the spread's definition 5% of real images lie outside it), so the count cannot wait on one.
MAX_ROUNDS = 8


@dataclass(frozen=True)
class ClassSpread:
    """Each class's centroid of real train features and the radius that holds SPREAD_PERCENTILE of its images."""

    centroids: np.ndarray  # float64 (C, feature_dim)
    radii: np.ndarray  # float64 (C,)

    @classmethod
    def of(cls, judge: "Classifier", images: np.ndarray, labels: np.ndarray) -> "ClassSpread":
        """From the judge's features of real images uint8 (N, C, H, W) and their labels; every class needs one."""
        features = judge.embed(images)
        centroids = np.zeros((judge.num_classes, features.shape[1]))
        radii = np.zeros(judge.num_classes)
        for label in range(judge.num_classes):
            mine = features[labels == label]
            if not len(mine):
                raise GenaugError(f"--select useful: class {label} has no real train image (expected every class "
                                  "in --data, to measure its spread)")
            centroids[label] = mine.mean(axis=0)
            # "higher": a real distance, so at least the percentile's share of the class lies within it.
            radii[label] = np.percentile(np.linalg.norm(mine - centroids[label], axis=1), SPREAD_PERCENTILE,
                                         method="higher")
        return cls(centroids, radii)

    @classmethod
    def recorded(cls, settings: "FilterSettings") -> "ClassSpread":
        return cls(np.array(settings.centroids, dtype=np.float64), np.array(settings.radii, dtype=np.float64))

    def judge_candidates(self, judge: "Classifier", images: np.ndarray,
                         labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(bool: whether each candidate passes, float64: its own-class probability) for uint8 (N, C, H, W)."""
        features = judge.embed(images)
        probabilities = judge.predict_proba(images)
        rows = np.arange(len(labels))
        distance = np.linalg.norm(features - self.centroids[labels], axis=1)
        passed = (probabilities.argmax(axis=1) == labels) & (distance <= self.radii[labels])
        return passed, probabilities[rows, labels]


def least_sure_passing(passed: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For (images, candidates) arrays: (whether each image has a passing candidate, the column of its least sure one;
    the earlier on a tie)."""
    ranked = np.where(passed, confidence, np.inf)
    return passed.any(axis=1), ranked.argmin(axis=1)


# draw(rows, attempts) -> uint8 (len(rows), C, H, W): candidate attempts[k] of the shard's row rows[k].
DrawCandidates = Callable[[np.ndarray, np.ndarray], torch.Tensor]


def select_useful(draw: DrawCandidates, judge: "Classifier", spread: ClassSpread, labels: np.ndarray,
                  per_round: int, out: torch.Tensor) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Fill `out` (uint8 (rows, C, H, W) on the host) with each row's kept candidate; returns (int64 the attempt
    kept for each row, bool whether it passed, candidates judged per class).

    A row none of whose MAX_ROUNDS rounds has a passing candidate keeps its most class-like one (highest own-class
    probability): the count stays exact, and the row says it did not pass.
    """
    count, num_classes = len(labels), judge.num_classes
    kept = np.full(count, -1, dtype=np.int64)
    best = np.full(count, -np.inf)  # the highest own-class probability a still pending row has seen
    passed_rows = np.zeros(count, dtype=bool)
    candidates = np.zeros(num_classes, dtype=np.int64)
    pending = np.arange(count)
    for attempt in range(0, MAX_ROUNDS * per_round, per_round):
        if not len(pending):
            break
        rows = np.repeat(pending, per_round)
        attempts = np.tile(attempt + np.arange(per_round), len(pending))
        images = draw(rows, attempts).cpu()
        passed, confidence = spread.judge_candidates(judge, images.numpy(), labels[rows])
        passed, confidence = passed.reshape(-1, per_round), confidence.reshape(-1, per_round)
        accepted, column = least_sure_passing(passed, confidence)
        likeliest = confidence.argmax(axis=1)
        better = ~accepted & (confidence.max(axis=1) > best[pending])  # a fallback better than any before
        column = np.where(accepted, column, likeliest)
        take = accepted | better
        chosen = np.flatnonzero(take) * per_round + column[take]  # rows of `images`
        out[torch.from_numpy(pending[take])] = images[torch.from_numpy(chosen)]
        kept[pending[take]] = attempts[chosen]
        best[pending[better]] = confidence.max(axis=1)[better]
        passed_rows[pending[accepted]] = True
        candidates += np.bincount(labels[pending], minlength=num_classes) * per_round
        pending = pending[~accepted]
    return kept, passed_rows, candidates.tolist()


class UsefulImages:
    """The --select useful job's images from noise: candidate a of image i is latent i + a * n."""

    def __init__(self, model: torch.nn.Module, judge: "Classifier", plan: Plan, settings: "FilterSettings",
                 device: torch.device):
        self.model, self.judge, self.plan, self.device = model, judge, plan, device
        self.spread, self.per_round = ClassSpread.recorded(settings), settings.candidates_per_round

    def fill(self, shard: Shard, out: torch.Tensor) -> tuple[dict[str, np.ndarray], list[int]]:
        from gen_aug.sampling import generate_uint8

        indices, labels = np.arange(shard.start, shard.stop, dtype=np.int64), self.plan.labels(shard.start, shard.stop)

        def draw(rows: np.ndarray, attempts: np.ndarray) -> torch.Tensor:
            latent = torch.from_numpy(indices[rows] + attempts * self.plan.n)
            return generate_uint8(self.model, self.plan.seed, latent, torch.from_numpy(labels[rows]), self.device)

        kept, passed, candidates = select_useful(draw, self.judge, self.spread, labels, self.per_round, out)
        return {"latent_index": indices + kept * self.plan.n, "useful": passed.astype(np.int64)}, candidates
