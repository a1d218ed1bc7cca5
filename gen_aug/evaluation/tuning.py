"""Choices made on validation, never on test: each setting of a small grid scored on the validation split.

An arm's settings (how often a variant is swapped in, the soft label's gamma, the mix ratio) change
its score; picking the best by its test score would report the luck of the pick as a gain. So each
point of the grid trains the arms it affects, seed by seed, and scores them on a validation set the
evaluation never tests on; the point whose best arm scores highest there is the one the test split
then sees, once. Real and classical do not depend on these settings and are not rerun per point.
Synthesis settings (a variant's strength, a cdm's guidance) are points too: each has an output of its
own, made by `genaug run`, and the arms that use synthetic images are scored on each.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Callable

from gen_aug.data import LabelledImages
from gen_aug.errors import GenaugError
from gen_aug.evaluation.arms import plan_arms, run_arm, run_plans
from gen_aug.classifiers.classifier import ClassifierConfig
from gen_aug.evaluation.distill import TEACHER_ARM
from gen_aug.evaluation.options import SYNTHESIS_TUNABLE, TUNABLE, EvaluationOptions
from gen_aug.evaluation.result import SetSummary, TunedPoint, Tuning
from gen_aug.evaluation.swap import VariantProvenance


def tuned_arms(options: EvaluationOptions) -> tuple[str, ...]:
    """The arms of `options` that a setting of its grid changes, in the order asked."""
    affected = {arm for key in options.tune for arm in {**TUNABLE, **SYNTHESIS_TUNABLE}[key]}
    arms = tuple(arm for arm in options.arms if arm in affected)
    if not arms:
        raise GenaugError(f"tune = {{{', '.join(options.tune)}}}: no arm of {', '.join(options.arms)} depends on "
                          f"{'it' if len(options.tune) == 1 else 'them'} (expected one of "
                          f"{', '.join(sorted(affected))} among the arms)")
    return arms


def grid_points(grid: dict[str, tuple[float, ...]]) -> list[dict[str, float]]:
    """Every combination of the grid's values, the first key varying slowest."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[key] for key in keys))]


def split_grid(grid: dict[str, tuple[float, ...]] | None) -> tuple[dict, dict]:
    """(the synthesis settings of a grid, the evaluation's own), each in the grid's order."""
    grid = grid or {}
    return ({key: values for key, values in grid.items() if key in SYNTHESIS_TUNABLE},
            {key: values for key, values in grid.items() if key not in SYNTHESIS_TUNABLE})


# (the synthesis point an output was made at, a function that loads it: (its images, their variant sources))
Output = tuple[dict[str, float], Callable[[], tuple[LabelledImages, VariantProvenance | None]]]


def classifier_runs(options: EvaluationOptions) -> int:
    """The classifier runs an evaluation trains: TSTR and every arm at every seed, and with a grid each tuned arm
    again at every seed of every point."""
    runs = (len(options.arms) + 1) * len(options.seeds)
    if options.tune:
        made_grid, own_grid = split_grid(options.tune)
        points = len(grid_points(made_grid)) * len(grid_points(own_grid))
        arms = tuned_arms(options)
        runs += len(arms) * len(options.seeds) * points
        runs += len(options.seeds) if "distill" in arms else 0  # its teachers on validation, once for every point
    return runs


def tune(real_train: LabelledImages, validation: LabelledImages, outputs: list[Output], options: EvaluationOptions,
         config: ClassifierConfig, *, device=None, log: Callable[[str], None] = lambda message: None,
         progress: bool = True) -> tuple[Tuning, int]:
    """Each point of `options.tune`, on each output, scored on `validation` (mean over the seeds of the options'
    metric); returns (the record, the index of the output chosen). The point chosen is the one whose best arm scores
    highest, the first such in grid order on a tie."""
    arms, metric = tuned_arms(options), options.metric
    _, own_grid = split_grid(options.tune)
    teachers, points, output_of = None, [], []
    for index, (made_at, load) in enumerate(outputs):
        synthetic, variant_sources = load()
        if teachers is None:
            teachers = _teachers(arms, real_train, synthetic, validation, options, config, device, progress,
                                 variant_sources)
        for point in grid_points(own_grid):
            at = dataclasses.replace(options, **point)
            words = ", ".join(f"{key} {value:g}" for key, value in {**made_at, **point}.items())
            plans, _ = plan_arms(arms, real_train, synthetic, at, variant_sources)
            log(f"tune {words}: {', '.join(arms)} on validation ({len(options.seeds)} seeds each)")
            summaries, _ = run_plans(plans, validation, config, at, device, progress,
                                     teachers={TEACHER_ARM: teachers} if teachers else None)
            means = tuple(summary.score(metric).mean for summary in summaries)
            points.append(TunedPoint(settings={**made_at, **point}, arms=arms, means=means))
            output_of.append(index)
    best = max(range(len(points)), key=lambda i: (points[i].best(), -i))
    grid = {key: list(values) for key, values in options.tune.items()}  # as report.json holds it
    return (Tuning(validation=_summary(validation), metric=metric, grid=grid, points=tuple(points),
                   chosen=points[best].settings), output_of[best])


def _teachers(arms, real_train, synthetic, validation, options, config, device, progress, variant_sources):
    """The classical classifiers, by seed, that teach the distill arm: trained once, for every point."""
    if "distill" not in arms:
        return {}
    (plan,), _ = plan_arms((TEACHER_ARM,), real_train, synthetic, options, variant_sources)
    kept = {}
    run_arm(plan, validation, config, options, device, progress, keep=kept)
    return kept


def check_validation(validation: LabelledImages, real_train: LabelledImages, real_test: LabelledImages,
                     spec: str) -> None:
    """The validation set must be neither the test set nor the train split: a choice made on either is no choice."""
    for other, name in ((real_test, "the test set"), (real_train, "--real's train split")):
        if validation.fingerprint == other.fingerprint:
            raise GenaugError(f"--validation {spec!r}: the same images as {name} (expected a split of its own, "
                              "e.g. the npz's val split or a val/ folder)")


def _summary(data: LabelledImages) -> SetSummary:
    return SetSummary(description=data.description, images=len(data.images), fingerprint=data.fingerprint,
                      class_counts=tuple(data.class_counts().tolist()))
