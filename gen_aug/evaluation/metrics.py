"""Image-quality metrics in a classifier's feature space: class consistency, Fréchet distance, precision/recall."""

from __future__ import annotations

import numpy as np
import torch

from gen_aug.errors import GenaugError
from gen_aug.evaluation.scores import per_class_recall
from gen_aug.evaluation.options import EvaluationOptions
from gen_aug.evaluation.result import ClassConsistency, PrecisionRecall


def class_consistency(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> ClassConsistency:
    """Share of images predicted as the class they were generated for, overall and per class (None: no images)."""
    overall = float((predicted == labels).mean()) if len(labels) else None
    return ClassConsistency(overall=overall, per_class=tuple(per_class_recall(predicted, labels, num_classes)))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets.

    tr sqrt(A B) is computed as tr sqrt(A^1/2 B A^1/2), a symmetric PSD matrix whose eigenvalues
    are real and non-negative: exact where scipy's sqrtm of the non-symmetric A B returns complex
    noise for the singular covariances that per-class sets smaller than D give.
    """
    if len(features_a) < 2 or len(features_b) < 2:
        raise GenaugError(
            f"Fréchet distance of {len(features_a)} and {len(features_b)} feature vectors (expected 2 or more each)"
        )
    mean_a, mean_b = features_a.mean(axis=0), features_b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(features_a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(features_b, rowvar=False))
    sqrt_a = _psd_sqrt(cov_a)
    middle = sqrt_a @ cov_b @ sqrt_a
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    distance = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt
    return float(max(distance, 0.0))  # a tiny negative value is rounding, not a distance


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_per_class(
    real_features: np.ndarray,
    real_labels: np.ndarray,
    synthetic_features: np.ndarray,
    synthetic_labels: np.ndarray,
    num_classes: int,
) -> tuple[float | None, ...]:
    """Fréchet distance class by class; None where either side has fewer than 2 images of the class."""
    distances: list[float | None] = []
    for label in range(num_classes):
        real_mine, synthetic_mine = real_features[real_labels == label], synthetic_features[synthetic_labels == label]
        enough = len(real_mine) >= 2 and len(synthetic_mine) >= 2
        distances.append(frechet_distance(real_mine, synthetic_mine) if enough else None)
    return tuple(distances)


def sample_indices(count: int, sample_size: int, seed: int) -> np.ndarray:
    """At most `sample_size` indices of `count`, the same for the same arguments, in increasing order."""
    if count <= sample_size:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=sample_size, replace=False))


def precision_recall(
    real_features: np.ndarray, synthetic_features: np.ndarray, *, k: int = EvaluationOptions.k
) -> PrecisionRecall:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-nearest-neighbour manifolds.

    Precision: share of synthetic points inside some real point's ball (radius: distance to its
    k-th nearest real neighbour); recall: the same with the roles swapped. Sample both sets to a
    fixed size first (`sample_indices`): the radii shrink as a set grows.
    """
    if min(len(real_features), len(synthetic_features)) <= k:
        raise GenaugError(
            f"precision/recall with k={k} of {len(real_features)} real and {len(synthetic_features)} synthetic "
            f"feature vectors (expected more than k of each)"
        )
    real, synthetic = torch.from_numpy(real_features).double(), torch.from_numpy(synthetic_features).double()
    real_radii, synthetic_radii = _kth_neighbour_distance(real, k), _kth_neighbour_distance(synthetic, k)
    return PrecisionRecall(
        precision=_share_inside(synthetic, real, real_radii),
        recall=_share_inside(real, synthetic, synthetic_radii),
        k=k,
    )


def _distances(points: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    # The exact (non-matmul) form keeps a point's distance to itself at 0, inside its own ball.
    return torch.cdist(points, others, compute_mode="donot_use_mm_for_euclid_dist")


def _kth_neighbour_distance(points: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    # Column 0 of the sorted distances is the point itself.
    return torch.cat(
        [_distances(points[i : i + chunk], points).kthvalue(k + 1, dim=1).values for i in range(0, len(points), chunk)]
    )


def _share_inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 1024) -> float:
    inside = [
        (_distances(points[i : i + chunk], centres) <= radii[None, :]).any(dim=1) for i in range(0, len(points), chunk)
    ]
    return float(torch.cat(inside).double().mean())
