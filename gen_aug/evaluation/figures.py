"""The report's charts, drawn with matplotlib: paired differences per arm, per-class recall per arm, memorised pairs.

Each function returns PNG bytes. They use matplotlib's object API (Figure, not pyplot), so
drawing a report changes no global backend or state of the caller's.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

from gen_aug.data import LabelledImages
from gen_aug.evaluation.result import EvaluationResult, NearestReal
from gen_aug.evaluation.wording import METRIC_NAMES

DPI = 110


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def differences_figure(result: EvaluationResult) -> bytes:
    """One panel per baseline (real, classical): each other arm's paired difference with its 95% interval."""
    metric = result.settings.metric
    baselines = [name for name in ("real", "classical") if result.arm(name) is not None]
    figure = Figure(figsize=(5.2 * len(baselines), 0.5 * len(result.arms) + 1.8), layout="constrained")
    axes = figure.subplots(1, len(baselines), squeeze=False)[0]
    for axis, baseline in zip(axes, baselines):
        rows = [(arm.name, arm.difference(baseline, metric)) for arm in result.arms if arm.name != baseline]
        rows = [(name, d) for name, d in rows if d is not None and d.mean_points is not None]
        for y, (name, difference) in enumerate(rows):
            low = difference.low_points if difference.low_points is not None else difference.mean_points
            high = difference.high_points if difference.high_points is not None else difference.mean_points
            colour = {"helps": "tab:green", "hurts": "tab:red"}.get(difference.verdict, "tab:gray")
            axis.errorbar(difference.mean_points, y, xerr=[[difference.mean_points - low], [high - difference.mean_points]],
                          fmt="o", color=colour, capsize=4)
        axis.axvline(0, color="black", linewidth=0.8)
        axis.set_yticks(range(len(rows)), [name for name, _ in rows])
        axis.set_ylim(-0.7, len(rows) - 0.3)
        axis.invert_yaxis()
        axis.set_xlabel(f"{METRIC_NAMES[metric]} difference to {baseline} (points)")
        axis.grid(axis="x", alpha=0.3)
    figure.suptitle(f"paired by seed, mean and 95% interval over {len(result.settings.seeds)} seeds")
    return _png(figure)


def recall_figure(result: EvaluationResult) -> bytes:
    """For each class, every arm's test recall (mean over seeds, std whiskers) as points on an axis fitted to them.

    Points, not bars: a bar's length is read from zero, and an axis from zero would squeeze arms a few points
    apart into one height.
    """
    arms = [*result.arms, result.tstr]
    names = list(result.class_names)
    width = 0.8 / len(arms)
    figure = Figure(figsize=(min(14.0, max(6.0, 0.16 * len(names) * len(arms) + 3)), 4.0), layout="constrained")
    axis = figure.subplots()
    shown = []
    for index, arm in enumerate(arms):
        means = np.array([np.nan if v is None else v for v in arm.per_class_recall_mean], dtype=float)
        stds = np.array([np.nan if v is None else v for v in arm.per_class_recall_std], dtype=float)
        positions = np.arange(len(names)) - 0.4 + width * (index + 0.5)
        axis.errorbar(positions, means, yerr=stds, fmt="o", markersize=4, capsize=2, linewidth=0.8, label=arm.name)
        shown.extend([means - stds, means + stds])
    axis.set_ylim(*recall_limits(np.concatenate(shown)))
    for edge in np.arange(len(names) - 1) + 0.5:  # one column of arms per class
        axis.axvline(edge, color="grey", linewidth=0.5, alpha=0.5)
    axis.set_xticks(range(len(names)), [name if len(name) <= 14 else name[:13] + "…" for name in names])
    axis.set_ylabel("test recall (axis fitted to the points)")
    axis.set_title(f"per-class recall per arm (mean and std over {len(result.settings.seeds)} seeds)")
    axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axis.grid(axis="y", alpha=0.3)
    return _png(figure)


def recall_limits(values: np.ndarray) -> tuple[float, float]:
    """y limits around the finite `values` with a 10% margin, within recall's [0, 1]; the full range if none."""
    values = values[np.isfinite(values)]
    if not len(values):
        return 0.0, 1.02
    low, high = float(values.min()), float(values.max())
    margin = max(0.1 * (high - low), 0.01)
    return max(0.0, low - margin), min(1.02, high + margin)


def memorisation_figure(result: EvaluationResult, real_train: LabelledImages, synthetic: LabelledImages) -> bytes:
    """The closest synthetic-real pairs, in features and in pixels: synthetic above, its nearest real image below."""
    spaces: list[NearestReal] = [result.memorisation.features, result.memorisation.pixels]
    columns = max(1, max(len(space.closest) for space in spaces))
    figure = Figure(figsize=(1.2 * columns + 1.2, 5.4), layout="constrained")
    grid = figure.subplots(4, columns, squeeze=False)
    for row, space in enumerate(spaces):
        for column in range(columns):
            top, bottom = grid[2 * row, column], grid[2 * row + 1, column]
            for axis in (top, bottom):
                axis.set_axis_off()
            if column >= len(space.closest):
                continue
            pair = space.closest[column]
            _show(top, synthetic.images[pair.synthetic_index])
            _show(bottom, real_train.images[pair.real_index])
            ratio = pair.distance / space.threshold if space.threshold > 0 else float("inf")
            top.set_title(f"{ratio:.2f}x", fontsize="small")
        grid[2 * row, 0].text(-0.15, 0.5, f"{space.space}\nsynthetic", transform=grid[2 * row, 0].transAxes,
                              ha="right", va="center", fontsize="small")
        grid[2 * row + 1, 0].text(-0.15, 0.5, "nearest\nreal", transform=grid[2 * row + 1, 0].transAxes,
                                  ha="right", va="center", fontsize="small")
    figure.suptitle(f"closest pairs; distance as a multiple of the {result.memorisation.percentile:g}th percentile "
                    "of train-to-train distances", fontsize="medium")
    return _png(figure)


def _show(axis, image: np.ndarray) -> None:
    """uint8 (C, H, W) image on an axis, gray for one channel."""
    if image.shape[0] == 1:
        axis.imshow(image[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        axis.imshow(image.transpose(1, 2, 0), interpolation="nearest")
