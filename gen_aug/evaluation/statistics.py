"""Paired differences between arms over seeds: mean, t-distribution confidence interval, and the verdict it supports."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats

from gen_aug.evaluation.result import Difference

CONFIDENCE = 0.95
HELPS, NO_EFFECT, HURTS, NOT_AVAILABLE = "helps", "no detectable effect", "hurts", "n/a"


def paired_difference(
    arm: Sequence[float | None], baseline: Sequence[float | None], *, to: str, metric: str
) -> Difference:
    """(arm - baseline) seed by seed, in points: mean and its CONFIDENCE interval, t with seeds - 1 degrees of freedom.

    Seeds where either side is undefined (None) are left out. With fewer than two seeds left the
    interval, and so the verdict, is n/a: one seed says nothing about the spread.
    """
    differences = [100 * (a - b) for a, b in zip(arm, baseline, strict=True) if a is not None and b is not None]
    interval = mean_interval(differences)
    low, high = interval if interval is not None else (None, None)
    return Difference(
        to=to, metric=metric, mean_points=float(np.mean(differences)) if differences else None,
        low_points=low, high_points=high, verdict=verdict(low, high) if interval is not None else NOT_AVAILABLE,
    )


def verdict(low: float, high: float) -> str:
    """helps when the whole interval is above 0, hurts when it is below, else no detectable effect."""
    if low > 0:
        return HELPS
    if high < 0:
        return HURTS
    return NO_EFFECT


def mean_interval(values: Sequence[float | None]) -> tuple[float, float] | None:
    """The CONFIDENCE interval of the mean of `values` (t over seeds), in the values' units; None below 2 values."""
    known = np.array([v for v in values if v is not None], dtype=float)
    if len(known) < 2:
        return None
    half_width = stats.t.ppf(0.5 + CONFIDENCE / 2, len(known) - 1) * known.std(ddof=1) / np.sqrt(len(known))
    return float(known.mean() - half_width), float(known.mean() + half_width)
