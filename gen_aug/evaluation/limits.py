"""What a verdict cannot say: synthetic images that fail as images, and baselines with no room left to gain in.

"No detectable effect" claims that a gain could have been seen. It could not when the synthetic images
are not images of the data at all (no arm then tests augmentation), when the baseline already
scores so near 100% that any gain is smaller than the interval, or when the interval is wider than
any gain augmentation plausibly gives: the report says which, in the verdict's place.
"""

from __future__ import annotations

import math

from gen_aug.evaluation.result import ArmSummary, EvaluationResult
from gen_aug.evaluation.statistics import CONFIDENCE

FAILED_PRECISION = 0.05  # below this share of synthetic images inside the real test manifold, they are not its images
CHANCE_MARGIN = 0.10  # class consistency within this of chance (1 / classes): the images carry no class
FULL_SCORE = 0.995  # a baseline at or above this leaves no room to gain in
PLAUSIBLE_GAIN_POINTS = 10.0  # augmentation gains beyond this are not to be expected: a wider interval tells nothing


def failed_images(result: EvaluationResult) -> str | None:
    """Why the synthetic images fail as images, or None when they do not."""
    precision = result.precision_recall.precision
    consistency = result.class_consistency.overall
    chance = 1 / len(result.class_names)
    reasons = []
    if precision < FAILED_PRECISION:
        reasons.append(f"precision {precision:.3f} (real train vs test: "
                       f"{result.precision_recall.real_train_vs_test.precision:.3f})")
    if consistency is not None and consistency < chance + CHANCE_MARGIN:
        reasons.append(f"class consistency {100 * consistency:.1f}% where chance is {100 * chance:.1f}%")
    if not reasons:
        return None
    return (f"the synthetic images fail as images ({' and '.join(reasons)}): no arm here tests augmentation; "
            "make images of the data first (train the generator longer, or check what it was trained on)")


def cannot_tell(result: EvaluationResult, arm: ArmSummary, to: str) -> str | None:
    """Why `arm` against `to` could not have shown an effect, where its verdict is 'no detectable effect' for want
    of room (the baseline near full) or of precision (an interval wider than any plausible gain); else None."""
    metric = result.settings.metric
    difference, baseline = arm.difference(to, metric), arm_named(result, to)
    if difference is None or difference.verdict != "no detectable effect" or baseline is None:
        return None
    score = baseline.score(metric).mean
    if score is None or difference.low_points is None:
        return None
    room = 100 * (1 - score)
    half_width = (difference.high_points - difference.low_points) / 2
    if half_width > PLAUSIBLE_GAIN_POINTS:
        return (f"too uncertain to tell: an interval of ±{half_width:.1f} points is wider than any gain augmentation "
                f"plausibly gives (about {PLAUSIBLE_GAIN_POINTS:g}); more seeds narrow it, and about "
                f"{images_to_see_gain(score, 1.0):,} test images would show a 1-point gain (test sampling alone)")
    if score >= FULL_SCORE or half_width > room:
        gain = max(room / 2, 0.05)
        return (f"too little headroom to tell: {to} scores {100 * score:.1f}%, {room:.2f} points below full, "
                f"against an interval of ±{half_width:.2f}; about {images_to_see_gain(score, gain):,} test images "
                f"would show a {gain:.2f}-point gain (test sampling alone)")
    return None


def images_to_see_gain(score: float, gain_points: float) -> int:
    """Test images at which a gain of `gain_points` over a classifier scoring `score` exceeds the CONFIDENCE
    interval of the difference of two such scores, counting test sampling alone (binomial, two classifiers)."""
    from scipy.stats import norm

    z = norm.ppf(0.5 + CONFIDENCE / 2)
    spread = max(score * (1 - score), 1e-4)  # a perfect baseline still errs sometimes on new images
    return math.ceil(2 * z**2 * spread / (gain_points / 100) ** 2)


def arm_named(result: EvaluationResult, name: str) -> ArmSummary | None:
    return next((arm for arm in result.arms if arm.name == name), None)
