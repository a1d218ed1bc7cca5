"""An evaluation's arms: one training set and recipe each, the same classifier, budget and seeds, tested on real.

real: real train with the light default shift. classical: the same with strong torchvision
augmentation on the fly. synthetic: real + synthetic as the mix says. classical+synthetic: both.
top-up: real + synthetic filling every class to the largest class's real count, nothing more.
pretrain: synthetic for half the steps, then real for the other half. reweighted: real train
drawn class-balanced. variants: real train with each drawn image swapped for one of its own variants
(synthesize --variants-of) with probability p; classical+variants: the same under strong augmentation;
class-mix and classical+class-mix: the same with variants rendered under other classes (--mix-classes),
soft-labelled. distill: classical's recipe on real + synthetic, the synthetic images labelled by the same
seed's classical classifier's probabilities. The classical arms draw class-balanced too where their set is
imbalanced.
TSTR (synthetic only) is run the same way. Every arm is paired by seed with real and classical.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from gen_aug.data import LabelledImages
from gen_aug.classifiers.augment import ClassicalAugment
from gen_aug.classifiers.classifier import REFERENCE_SEED, Classifier, ClassifierConfig, train_classifier
from gen_aug.evaluation.distill import TEACHER_ARM, TeacherLabels
from gen_aug.evaluation.mixing import is_imbalanced, mix_real_synthetic, mixing_record
from gen_aug.errors import GenaugError
from gen_aug.evaluation.options import CLASS_MIX_ARMS, METRICS, VARIANT_ARMS, EvaluationOptions
from gen_aug.evaluation.parallel import jobs_for, one_bar, run_all
from gen_aug.evaluation.result import ArmSummary, Mixing, Score
from gen_aug.evaluation.scores import per_class_recall, scores
from gen_aug.evaluation.statistics import paired_difference
from gen_aug.evaluation.swap import VariantPool, VariantProvenance, soft_labels

POLICY_NAMES = {"trivialaugment": "TrivialAugmentWide", "randaugment": "RandAugment"}


@dataclass(frozen=True)
class ArmPlan:
    name: str
    train: LabelledImages  # the set it trains on (or fine-tunes on, after `pretrain`)
    training: str  # the same in words, for the report
    classical: bool = False  # strong classical augmentation on the fly
    balanced: bool = False  # class-balanced batches
    pretrain: LabelledImages | None = None  # trained on for half the steps first
    swap: VariantPool | None = None  # each drawn real image swapped for one of its variants with the pool's probability
    teacher: str | None = None  # the arm whose classifier of the same seed labels rows `synthetic_from` on of `train`
    synthetic_from: int = 0


def plan_arms(
    names: Sequence[str], real_train: LabelledImages, synthetic: LabelledImages, options: EvaluationOptions,
    variant_sources: VariantProvenance | None = None,
) -> tuple[list[ArmPlan], Mixing]:
    """The plans of the named arms, in order, and the mix the synthetic arms use; `variant_sources`: the source of
    each synthetic image, for the variants arms."""
    mixing = mixing_record(real_train, synthetic, options.mix_ratio, options.mix, options.real_share)
    mixed = mix_real_synthetic(real_train, synthetic, options.mix_ratio, seed=REFERENCE_SEED,
                               real_share=options.real_share, mix=options.mix)
    topped = mix_real_synthetic(real_train, synthetic, 0.0, seed=REFERENCE_SEED, mix="balance")
    real_words = f"real train ({len(real_train.images):,} images)"
    mixed_words = (f"real train{f' x{mixing.real_repeats}' if mixing.real_repeats > 1 else ''} + "
                   f"{mixing.synthetic_images_added:,} synthetic ({mixing.mix} mix, ratio {mixing.ratio:g})")
    strong = f"{POLICY_NAMES[options.policy]} + random resized crop{' + flips' if options.flip else ''}"
    plans = {
        "real": ArmPlan("real", real_train, real_words),
        "classical": _classical(ArmPlan("classical", real_train, real_words), strong),
        "synthetic": ArmPlan("synthetic", mixed, mixed_words),
        "classical+synthetic": _classical(ArmPlan("classical+synthetic", mixed, mixed_words), strong),
        "top-up": ArmPlan("top-up", topped, f"real train + {len(topped.images) - len(real_train.images):,} "
                          "synthetic, every class filled to the largest class's real count"),
        "pretrain": ArmPlan("pretrain", real_train, f"{len(synthetic.images):,} synthetic, then {real_words}, "
                            "half the steps each", pretrain=synthetic),
        "reweighted": ArmPlan("reweighted", real_train, f"{real_words}, class-balanced", balanced=True),
        "distill": _classical(ArmPlan("distill", mixed, f"{mixed_words}, the synthetic images labelled by the same "
                                      f"seed's {TEACHER_ARM} classifier's probabilities", teacher=TEACHER_ARM,
                                      synthetic_from=len(mixed.images) - mixing.synthetic_images_added), strong),
    }
    if any(name in VARIANT_ARMS for name in names):
        plans.update(_variant_plans(names, real_train, synthetic, options, variant_sources, real_words, strong))
    return [plans[name] for name in names], mixing


def _variant_plans(names: Sequence[str], real_train: LabelledImages, synthetic: LabelledImages,
                   options: EvaluationOptions, provenance: VariantProvenance | None, real_words: str,
                   strong: str) -> dict[str, ArmPlan]:
    if provenance is None:
        raise GenaugError(f"--arms {','.join(options.arms)}: the variants arms need variants of the real train images "
                          "(expected --synthetic from genaug synthesize --variants-of)")
    wanted, other = (CLASS_MIX_ARMS, "variants") if provenance.mix_classes else (("variants", "classical+variants"),
                                                                                 "class-mix")
    refused = [name for name in names if name in VARIANT_ARMS and name not in wanted]
    if refused:
        held = "variants under other classes (--mix-classes)" if provenance.mix_classes else "same-class variants"
        raise GenaugError(f"--arms {refused[0]}: --synthetic holds {held} (expected the {other} arms for them, or an "
                          f"output {'without' if provenance.mix_classes else 'with'} --mix-classes)")
    targets = None
    if provenance.mix_classes:
        targets = soft_labels(provenance.source_label, synthetic.labels, provenance.strength, options.mix_gamma,
                              real_train.num_classes)
    pool = VariantPool.of(synthetic, provenance.source_index, len(real_train.images), options.swap_probability,
                          targets)
    fewest, most = pool.variants_per_image()
    each = f"{fewest}" if fewest == most else f"{fewest} to {most}"
    kind = " other-class" if provenance.mix_classes else ""
    words = (f"{real_words}, each drawn image swapped for one of its {each}{kind} variants with probability "
             f"{options.swap_probability:g}")
    if provenance.mix_classes:
        words += f", soft-labelled (1 - s^{options.mix_gamma:g}) its class + s^{options.mix_gamma:g} the other"
    return {wanted[0]: ArmPlan(wanted[0], real_train, words, swap=pool),
            wanted[1]: _classical(ArmPlan(wanted[1], real_train, words, swap=pool), strong)}


def _classical(plan: ArmPlan, strong: str) -> ArmPlan:
    balanced = is_imbalanced(plan.train.class_counts())
    words = f"{plan.training}, {strong}{', class-balanced' if balanced else ''}"
    return dataclasses.replace(plan, training=words, classical=True, balanced=balanced)


def tstr_plan(synthetic: LabelledImages) -> ArmPlan:
    """Train on synthetic, test on real: the classification accuracy score of the synthetic set."""
    return ArmPlan("tstr", synthetic, f"synthetic only ({len(synthetic.images):,} images)")


@dataclass(frozen=True)
class Run:
    """One classifier run: an arm's plan at one seed; `teacher` labels its synthetic rows (distill), and `keep`
    returns the classifier trained, to teach another arm."""

    plan: ArmPlan
    seed: int
    teacher: Classifier | None = None
    keep: bool = False


@dataclass(frozen=True)
class RunOutcome:
    scores: dict  # metric -> its value on the test set
    recall: list  # per class; None for a class without test images
    classifier: Classifier | None  # where the run was asked to keep it


def train_one(run: Run, test: LabelledImages, config: ClassifierConfig, options: EvaluationOptions, device=None,
              show_steps: bool = False) -> RunOutcome:
    """Train the run's classifier as its plan says and score it on `test`: the work of one task."""
    plan, seed = run.plan, run.seed
    augment = ClassicalAugment(options.policy, options.flip) if plan.classical else None
    swap = None if plan.swap is None else plan.swap.swap
    if plan.teacher is not None:
        swap = TeacherLabels.of(plan.train, plan.synthetic_from, run.teacher).swap
    common = dict(seed=seed, device=device, network=options.classifier, augment=augment, balanced=plan.balanced)
    start, budget = None, config
    if plan.pretrain is not None:
        half = dataclasses.replace(config, steps=max(1, config.steps // 2))
        start = train_classifier(plan.pretrain.images, plan.pretrain.labels, test.num_classes, half,
                                 progress=f"{plan.name} (synthetic) seed {seed}" if show_steps else None, **common)
        budget = dataclasses.replace(config, steps=max(1, config.steps - half.steps))
    trained = train_classifier(plan.train.images, plan.train.labels, test.num_classes, budget, start=start,
                               progress=f"{plan.name} seed {seed}" if show_steps else None, swap=swap, **common)
    probabilities = trained.predict_proba(test.images)
    return RunOutcome(scores(probabilities, test.labels),
                      per_class_recall(probabilities.argmax(axis=1), test.labels, test.num_classes),
                      trained if run.keep else None)


def run_plans(plans: Sequence[ArmPlan], test: LabelledImages, config: ClassifierConfig, options: EvaluationOptions,
              device=None, progress: bool = True, teachers: dict[str, dict[int, Classifier]] | None = None,
              keep: Sequence[str] = ()) -> tuple[list[ArmSummary], dict[str, dict[int, Classifier]]]:
    """Every seed of every plan as one set of runs, side by side where the options allow (parallel.py); returns
    (each plan's summary, in order; the classifiers of the plans named in `keep`, by seed)."""
    runs = [Run(plan, seed, None if plan.teacher is None else teachers[plan.teacher][seed], plan.name in keep)
            for plan in plans for seed in options.seeds]
    jobs = jobs_for(options.jobs, None if device is None else str(device), len(runs) * config.steps)
    work = functools.partial(train_one, test=test, config=config, options=options, device=device,
                             show_steps=progress and jobs <= 1)
    outcomes = run_all(work, runs, [f"{run.plan.name} seed {run.seed}" for run in runs], jobs, progress)
    seeds = len(options.seeds)
    summaries = [summarize(plan, outcomes[i * seeds:(i + 1) * seeds]) for i, plan in enumerate(plans)]
    kept = {run.plan.name: {} for run in runs if run.keep}
    for run, outcome in zip(runs, outcomes):
        if run.keep:
            kept[run.plan.name][run.seed] = outcome.classifier
    return summaries, kept


def run_arm(plan: ArmPlan, test: LabelledImages, config: ClassifierConfig, options: EvaluationOptions, device=None,
            progress: bool = True, teachers: dict[int, Classifier] | None = None,
            keep: dict[int, Classifier] | None = None) -> ArmSummary:
    """One classifier per seed trained as `plan` says, each scored on `test`; differences are added by `pair_arms`.

    `teachers`: plan.teacher's classifier of each seed; `keep` receives this arm's, by seed, to teach another.
    """
    (summary,), kept = run_plans([plan], test, config, options, device, progress,
                                 teachers={plan.teacher: teachers} if plan.teacher is not None else None,
                                 keep=(plan.name,) if keep is not None else ())
    if keep is not None:
        keep.update(kept[plan.name])
    return summary


def summarize(plan: ArmPlan, outcomes: Sequence[RunOutcome]) -> ArmSummary:
    """An arm's scores over its seeds' runs."""
    counts = plan.train.class_counts()
    recall_mean, recall_std = _column_stats([outcome.recall for outcome in outcomes])
    return ArmSummary(
        name=plan.name, training=plan.training, train_images=len(plan.train.images),
        class_counts=tuple(counts.tolist()), sampled_shares=sampled_shares(counts, plan.balanced),
        pretrain_images=0 if plan.pretrain is None else len(plan.pretrain.images),
        **{metric: _score([outcome.scores[metric] for outcome in outcomes]) for metric in METRICS},
        per_class_recall_mean=recall_mean, per_class_recall_std=recall_std,
    )


def sampled_shares(class_counts: np.ndarray, balanced: bool) -> tuple[float, ...]:
    """Each class's share of the batches: its share of the images, or an equal share of every class present."""
    drawn = (np.asarray(class_counts) > 0) if balanced else np.asarray(class_counts)
    return tuple((drawn / drawn.sum()).tolist())


def pair_arms(arms: Sequence[ArmSummary], baselines: Sequence[ArmSummary]) -> list[ArmSummary]:
    """Each arm with its paired differences to every baseline (real, classical) but itself, every metric."""
    paired = []
    for arm in arms:
        differences = tuple(
            paired_difference(arm.score(metric).per_seed, base.score(metric).per_seed, to=base.name, metric=metric)
            for base in baselines if base.name != arm.name for metric in METRICS
        )
        paired.append(dataclasses.replace(arm, differences=differences))
    return paired


def run_arms(
    real_train: LabelledImages,
    synthetic: LabelledImages,
    real_test: LabelledImages,
    options: EvaluationOptions,
    config: ClassifierConfig,
    *,
    device=None,
    log: Callable[[str], None] = lambda message: None,
    progress: bool = True,
    variant_sources: VariantProvenance | None = None,
) -> tuple[ArmSummary, Mixing, tuple[ArmSummary, ...]]:
    """(TSTR, the mix, every arm of `options.arms`), each arm paired with real and classical."""
    plans, mixing = plan_arms(options.arms, real_train, synthetic, options, variant_sources)
    everything = [tstr_plan(synthetic), *plans]
    teachers = tuple(plan.teacher for plan in plans if plan.teacher is not None)
    first = [plan for plan in everything if plan.teacher is None]  # teachers among them: they run first
    then = [plan for plan in everything if plan.teacher is not None]
    for plan in everything:
        log(f"arm {plan.name}: {plan.training} ({len(options.seeds)} seeds)")
    with one_bar(len(everything) * len(options.seeds), progress):  # the teachers' runs and their pupils' on one bar
        done, kept = run_plans(first, real_test, config, options, device, progress, keep=teachers)
        if then:
            done += run_plans(then, real_test, config, options, device, progress, teachers=kept)[0]
    summaries = {summary.name: summary for summary in done}
    in_order = [summaries["tstr"], *(summaries[plan.name] for plan in plans)]
    baselines = [arm for arm in in_order[1:] if arm.name in ("real", "classical")]
    tstr, *arms = pair_arms(in_order, baselines)
    return tstr, mixing, tuple(arms)


def _score(values: list[float | None]) -> Score:
    """Mean and sample standard deviation (0 for one seed) of the defined values; None when none is."""
    known = np.array([v for v in values if v is not None], dtype=float)
    if not len(known):
        return Score(mean=None, std=None, per_seed=tuple(values))
    return Score(mean=float(known.mean()), std=float(known.std(ddof=1 if len(known) > 1 else 0)),
                 per_seed=tuple(values))


def _column_stats(rows: list[list[float | None]]) -> tuple[tuple[float | None, ...], tuple[float | None, ...]]:
    """Per-class mean and standard deviation over seeds of (seeds, classes) values; None for a class without test images.

    Such a class is None in every seed's row (the test set is the same), so its column is all NaN.
    """
    table = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
    return _tuple(table.mean(axis=0)), _tuple(table.std(axis=0, ddof=1 if len(table) > 1 else 0))


def _tuple(values: np.ndarray) -> tuple[float | None, ...]:
    return tuple(None if np.isnan(v) else float(v) for v in values)
