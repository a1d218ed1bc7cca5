"""Real plus synthetic training sets: how many synthetic images each class gets, and the mixed set itself."""

from __future__ import annotations

import numpy as np

from gen_aug.data import LabelledImages
from gen_aug.errors import GenaugError
from gen_aug.evaluation.result import Mixing

IMBALANCE_RATIO = 1.5  # a set whose largest class has this many times the images of its smallest is imbalanced


def check_compatible(real: LabelledImages, other: LabelledImages, what: str, reference: str = "the real data's",
                     hint: str = "") -> None:
    """Raise GenaugError, naming `what`, unless `other` has the class names and image shape of `real`."""
    if other.class_names != real.class_names:
        raise GenaugError(
            f"{what}: classes {', '.join(other.class_names)} (expected {reference} classes {', '.join(real.class_names)})"
        )
    if other.shape != real.shape:
        raise GenaugError(
            f"{what}: images of {'x'.join(map(str, other.shape))} (expected {reference} "
            f"{'x'.join(map(str, real.shape))}, channels x height x width{hint})"
        )


def wanted_per_class(real_counts: np.ndarray, ratio: float, mix: str = "proportional") -> list[int]:
    """Synthetic images a mix asks of each class.

    proportional: `ratio` per real image of the class, so class shares stay those of the real set.
    balance: enough to bring every class to the largest class's real count, and `ratio` per image
    of that count beyond it, so every class gets a synthetic share (at ratio 0: the plain top-up).
    """
    if mix == "proportional":
        return [round(ratio * count) for count in real_counts]
    if mix == "balance":
        target = round(int(max(real_counts)) * (1 + ratio))
        return [max(0, target - int(count)) for count in real_counts]
    raise GenaugError(f"mix {mix!r} (expected proportional or balance)")


def synthetic_per_class(real: LabelledImages, synthetic: LabelledImages, ratio: float, mix: str = "proportional"):
    """Synthetic images a mix takes of each class: what it asks, at most all there are."""
    available = np.bincount(synthetic.labels, minlength=real.num_classes)
    return [min(wanted, int(have)) for wanted, have in zip(wanted_per_class(real.class_counts(), ratio, mix), available)]


def real_repeats(real_count: int, synthetic_count: int, real_share: float | None) -> int:
    """How many copies of the real images make them about `real_share` of a set with `synthetic_count` others."""
    if real_share is None or real_count == 0:
        return 1
    return max(1, round(real_share * synthetic_count / ((1 - real_share) * real_count)))


def mix_real_synthetic(
    real: LabelledImages,
    synthetic: LabelledImages,
    ratio: float,
    *,
    seed: int = 0,
    real_share: float | None = None,
    mix: str = "proportional",
) -> LabelledImages:
    """Real images plus synthetic ones drawn per class as `wanted_per_class` says (a class short of them gives all).

    With `real_share`, the real images are repeated (a whole number of times, at least once) until
    they are about that share of the set, so a classifier drawing uniform batches sees real images
    that often however many synthetic ones there are.
    """
    check_compatible(real, synthetic, f"synthetic images {synthetic.description}")
    if not ratio >= 0:
        raise GenaugError(f"mixing ratio {ratio} (expected 0 or more synthetic images per real image)")
    if real_share is not None and not 0 < real_share < 1:
        raise GenaugError(f"real share {real_share} (expected a fraction between 0 and 1, e.g. 0.5)")
    rng = np.random.default_rng(seed)
    chosen = [
        np.sort(rng.choice(np.flatnonzero(synthetic.labels == label), size=wanted, replace=False))
        for label, wanted in enumerate(synthetic_per_class(real, synthetic, ratio, mix))
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


def mixing_record(real: LabelledImages, synthetic: LabelledImages, ratio: float, mix: str,
                  real_share: float | None) -> Mixing:
    """What `mix_real_synthetic` with these arguments puts in, as report.json records it."""
    per_class = synthetic_per_class(real, synthetic, ratio, mix)
    return Mixing(
        mix=mix, ratio=ratio, real_share=real_share, real_repeats=real_repeats(len(real.images), sum(per_class), real_share),
        synthetic_images_added=sum(per_class), synthetic_per_class=tuple(per_class),
        synthetic_wanted_per_class=tuple(wanted_per_class(real.class_counts(), ratio, mix)),
    )


def is_imbalanced(class_counts: np.ndarray) -> bool:
    """Whether the largest class present has at least IMBALANCE_RATIO times the images of the smallest."""
    present = np.asarray(class_counts)[np.asarray(class_counts) > 0]
    return bool(len(present)) and present.max() >= IMBALANCE_RATIO * present.min()
