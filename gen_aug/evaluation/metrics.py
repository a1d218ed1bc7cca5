"""Quality and utility of synthetic images, measured with a classifier trained on the real data itself."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Callable, Sequence

import numpy as np
import torch

from gen_aug import __version__
from gen_aug.evaluation.classifier import (
    ClassifierConfig,
    cache_key,
    per_class_recall,
    reference_classifier,
    train_classifier,
)
from gen_aug.data import LabelledImages
from gen_aug.errors import GenaugError

REFERENCE_SEED = 0  # the judge is one network whatever seeds the downstream runs use


def check_compatible(real: LabelledImages, other: LabelledImages, role: str) -> None:
    """Raise GenaugError unless `other` has the class names and image shape of `real`."""
    if other.class_names != real.class_names:
        raise GenaugError(
            f"{role} images {other.description}: classes {', '.join(other.class_names)} "
            f"(expected the real data's classes {', '.join(real.class_names)})"
        )
    if other.shape != real.shape:
        raise GenaugError(
            f"{role} images {other.description}: shape {'x'.join(map(str, other.shape))} "
            f"(expected the real data's {'x'.join(map(str, real.shape))}, channels x height x width)"
        )


def mix_real_synthetic(
    real: LabelledImages, synthetic: LabelledImages, ratio: float, *, seed: int = 0, real_share: float | None = None
) -> LabelledImages:
    """Real images plus `ratio` synthetic images per real one, drawn per class so class shares stay the same.

    A class with fewer synthetic images than it asks for contributes all it has. With `real_share`,
    the real images are repeated (a whole number of times, at least once) until they are about that
    share of the set, so a classifier drawing uniform batches sees real images that often however
    many synthetic ones there are.
    """
    check_compatible(real, synthetic, "synthetic")
    if not ratio >= 0:
        raise GenaugError(f"mixing ratio {ratio} (expected 0 or more synthetic images per real image)")
    if real_share is not None and not 0 < real_share < 1:
        raise GenaugError(f"real share {real_share} (expected a fraction between 0 and 1, e.g. 0.5)")
    rng = np.random.default_rng(seed)
    chosen = [
        np.sort(rng.choice(np.flatnonzero(synthetic.labels == label), size=wanted, replace=False))
        for label, wanted in enumerate(synthetic_per_class(real, synthetic, ratio))
    ]
    extra = synthetic.select(np.concatenate(chosen).astype(np.int64))
    repeats = real_repeats(len(real.images), len(extra.images), real_share)
    return LabelledImages(
        np.concatenate([real.images] * repeats + [extra.images]),
        np.concatenate([real.labels] * repeats + [extra.labels]),
        real.class_names,
        f"{real.description}{f' x{repeats}' if repeats > 1 else ''} + {len(extra.images)} synthetic "
        f"from {synthetic.description}",
    )


def synthetic_per_class(real: LabelledImages, synthetic: LabelledImages, ratio: float) -> list[int]:
    """Synthetic images a mix at `ratio` takes of each class: `ratio` per real image, at most all there are."""
    available = np.bincount(synthetic.labels, minlength=real.num_classes)
    return [min(round(ratio * count), int(available[label])) for label, count in enumerate(real.class_counts())]


def real_repeats(real_count: int, synthetic_count: int, real_share: float | None) -> int:
    """How many copies of the real images make them about `real_share` of a set with `synthetic_count` others."""
    if real_share is None or real_count == 0:
        return 1
    return max(1, round(real_share * synthetic_count / ((1 - real_share) * real_count)))


def class_consistency(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """Share of images predicted as the class they were generated for, overall and per class (None: no images)."""
    overall = float((predicted == labels).mean()) if len(labels) else None
    return {"overall": overall, "per_class": per_class_recall(predicted, labels, num_classes)}


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
) -> list[float | None]:
    """Fréchet distance class by class; None where either side has fewer than 2 images of the class."""
    distances: list[float | None] = []
    for label in range(num_classes):
        real_mine, synthetic_mine = real_features[real_labels == label], synthetic_features[synthetic_labels == label]
        enough = len(real_mine) >= 2 and len(synthetic_mine) >= 2
        distances.append(frechet_distance(real_mine, synthetic_mine) if enough else None)
    return distances


def sample_indices(count: int, sample_size: int, seed: int) -> np.ndarray:
    """At most `sample_size` indices of `count`, the same for the same arguments, in increasing order."""
    if count <= sample_size:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=sample_size, replace=False))


def precision_recall(real_features: np.ndarray, synthetic_features: np.ndarray, *, k: int = 3) -> dict:
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
    return {
        "precision": _share_inside(synthetic, real, real_radii),
        "recall": _share_inside(real, synthetic, synthetic_radii),
        "k": k,
    }


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


def train_and_test(
    train: LabelledImages,
    test: LabelledImages,
    config: ClassifierConfig,
    seeds: Sequence[int],
    device: torch.device | str | None = None,
) -> dict:
    """Train one classifier per seed on `train`, test each on `test`: accuracy and per-class recall, mean and std.

    std is the sample standard deviation over seeds (0 for one seed).
    """
    accuracies, recalls = [], []
    for seed in seeds:
        classifier = train_classifier(train.images, train.labels, train.num_classes, config, seed=seed, device=device)
        predicted = classifier.predict(test.images)
        accuracies.append(float((predicted == test.labels).mean()))
        recalls.append(per_class_recall(predicted, test.labels, test.num_classes))
    ddof = 1 if len(seeds) > 1 else 0
    per_class = np.array([[np.nan if r is None else r for r in row] for row in recalls])
    return {
        "train_images": len(train.images),
        "accuracy_mean": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies, ddof=ddof)),
        "accuracy_per_seed": accuracies,
        "per_class_recall_mean": _none_for_nan(per_class.mean(axis=0)),
        "per_class_recall_std": _none_for_nan(per_class.std(axis=0, ddof=ddof)),
    }


def _none_for_nan(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]


def tstr(
    synthetic: LabelledImages,
    real_test: LabelledImages,
    config: ClassifierConfig = ClassifierConfig(),
    *,
    seeds: Sequence[int] = (0, 1, 2),
    device: torch.device | str | None = None,
) -> dict:
    """Train on synthetic, test on real: the classification accuracy score of the synthetic set."""
    check_compatible(real_test, synthetic, "synthetic")
    return train_and_test(synthetic, real_test, config, seeds, device)


def augmentation_gain(
    real_train: LabelledImages,
    synthetic: LabelledImages,
    real_test: LabelledImages,
    config: ClassifierConfig = ClassifierConfig(),
    *,
    ratio: float = 1.0,
    real_share: float | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    device: torch.device | str | None = None,
) -> dict:
    """The same classifier and step budget trained on real only and on real + synthetic, tested on real test."""
    mixed = mix_real_synthetic(real_train, synthetic, ratio, seed=REFERENCE_SEED, real_share=real_share)
    synthetic_count = sum(synthetic_per_class(real_train, synthetic, ratio))
    repeats = real_repeats(len(real_train.images), synthetic_count, real_share)
    real_only = train_and_test(real_train, real_test, config, seeds, device)
    real_plus_synthetic = train_and_test(mixed, real_test, config, seeds, device)
    return {
        "ratio": ratio,
        "real_share": real_share,
        "real_repeats": repeats,
        "synthetic_images_added": synthetic_count,
        "real_only": real_only,
        "real_plus_synthetic": real_plus_synthetic,
        "gain_points": 100 * (real_plus_synthetic["accuracy_mean"] - real_only["accuracy_mean"]),
    }


def evaluate_images(
    real_train: LabelledImages,
    real_test: LabelledImages,
    synthetic: LabelledImages,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    config: ClassifierConfig = ClassifierConfig(),
    mix_ratio: float = 1.0,
    real_share: float | None = None,
    sample_size: int = 2000,
    k: int = 3,
    sample_seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """Every metric of `synthetic` against the real data, as a JSON-ready dict (what report.json holds).

    Distances use at most `sample_size` images of each set, drawn with `sample_seed`, so figures
    compare across runs; class consistency uses every synthetic image.
    """
    check_compatible(real_train, real_test, "real test")
    check_compatible(real_train, synthetic, "synthetic")
    if not seeds:
        raise GenaugError("evaluation seeds: none given (expected one or more, e.g. 0,1,2)")
    sets = {"real_train": real_train, "real_test": real_test, "synthetic": synthetic}
    for name, data in sets.items():
        if len(data.images) <= k:
            raise GenaugError(
                f"{name.replace('_', ' ')} images {data.description}: {len(data.images)} images "
                f"(expected more than k={k} for precision and recall)"
            )
    num_classes = real_train.num_classes

    log("reference classifier (trained on real train, cached)")
    judge = reference_classifier(real_train, config, seed=REFERENCE_SEED, cache_dir=cache_dir, device=device)
    test_predicted = judge.predict(real_test.images)
    synthetic_predicted = judge.predict(synthetic.images)

    log(f"features of at most {sample_size} images per set")
    samples = {
        name: data.select(sample_indices(len(data.images), sample_size, sample_seed)) for name, data in sets.items()
    }
    features = {name: judge.embed(data.images) for name, data in samples.items()}

    log(f"train on synthetic, test on real ({len(seeds)} seeds)")
    tstr_result = tstr(synthetic, real_test, config, seeds=seeds, device=device)
    share = f", real images about {real_share:.0%} of the mix" if real_share is not None else ""
    log(f"real only vs real + synthetic at ratio {mix_ratio}{share} ({len(seeds)} seeds each)")
    gain = augmentation_gain(real_train, synthetic, real_test, config, ratio=mix_ratio, real_share=real_share,
                             seeds=seeds, device=device)

    return {
        "genaug_version": __version__,
        "class_names": list(real_train.class_names),
        "data": {name: _summary(data) for name, data in sets.items()},
        "settings": {
            "seeds": list(seeds),
            "classifier": asdict(config),
            "mix_ratio": mix_ratio,
            "real_share": real_share,
            "sample_size": sample_size,
            "sample_seed": sample_seed,
            "k": k,
        },
        "reference_classifier": {
            "test_accuracy": float((test_predicted == real_test.labels).mean()),
            "per_class_recall": per_class_recall(test_predicted, real_test.labels, num_classes),
            "seed": REFERENCE_SEED,
            "cache_key": cache_key(real_train, config, REFERENCE_SEED),
        },
        "class_consistency": class_consistency(synthetic_predicted, synthetic.labels, num_classes),
        "frechet_distance": {
            "overall": frechet_distance(features["real_test"], features["synthetic"]),
            "per_class": frechet_per_class(
                features["real_test"], samples["real_test"].labels,
                features["synthetic"], samples["synthetic"].labels, num_classes,
            ),
            "real_train_vs_test": frechet_distance(features["real_test"], features["real_train"]),
        },
        "precision_recall": {
            **precision_recall(features["real_test"], features["synthetic"], k=k),
            "real_train_vs_test": precision_recall(features["real_test"], features["real_train"], k=k),
        },
        "tstr": tstr_result,
        "augmentation": gain,
    }


def _summary(data: LabelledImages) -> dict:
    return {
        "description": data.description,
        "images": len(data.images),
        "fingerprint": data.fingerprint,
        "class_counts": data.class_counts().tolist(),
    }
