"""An evaluation's numbers in words: one formatting for the printed summary and report.md."""

from __future__ import annotations

import numpy as np

from gen_aug.evaluation.limits import arm_named, failed_images, cannot_tell
from gen_aug.evaluation.options import VARIANT_ARMS
from gen_aug.evaluation.result import ArmSummary, Difference, EvaluationResult, Memorisation, Score
from gen_aug.evaluation.statistics import CONFIDENCE, mean_interval

METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_f1": "macro-F1",
                "auc": "ROC AUC"}
# The arms whose verdicts are the answer.
SYNTHETIC_ARMS = ("synthetic", "classical+synthetic", "top-up", "pretrain", *VARIANT_ARMS, "distill")
MIXED_ARMS = ("synthetic", "classical+synthetic", "distill")  # the arms that train on the mix of real and synthetic
SMALL_TEST_SET = 1000  # below this many test images, the summary says what one image is worth
CLOSER_PRIOR = 0.01  # an arm this much closer (total variation) to the test shares than real train gains a caveat


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def score_text(score: Score | None) -> str:
    """'93.8% ± 0.7': the mean over seeds and the half-width of its 95% interval, in points ('93.8%' for one seed)."""
    if score is None or score.mean is None:
        return "n/a"
    interval = mean_interval(score.per_seed)
    if interval is None:
        return percent(score.mean)
    return f"{percent(score.mean)} ± {100 * (interval[1] - interval[0]) / 2:.1f}"


def difference_text(difference: Difference | None) -> str:
    """'+1.20 [+0.31, +2.09]': mean paired difference in points and its 95% interval."""
    if difference is None or difference.mean_points is None:
        return "n/a"
    if difference.low_points is None:
        return f"{difference.mean_points:+.2f}"
    return f"{difference.mean_points:+.2f} [{difference.low_points:+.2f}, {difference.high_points:+.2f}]"


def arm_line(arm: ArmSummary, metric: str) -> str:
    """'97.9% ± 0.7 balanced accuracy; vs real +0.10 [-0.50, +0.70] no detectable effect; vs classical ...'."""
    parts = [f"{score_text(arm.score(metric))} {METRIC_NAMES[metric]}"]
    for to in ("real", "classical"):
        difference = arm.difference(to, metric)
        if difference is not None:
            parts.append(f"vs {to} {difference_text(difference)} {difference.verdict}")
    return "; ".join(parts)


def verdict_lines(result: EvaluationResult) -> list[str]:
    """Each synthetic arm's verdict against real and classical, then what the reader must weigh them with."""
    metric, seeds = result.settings.metric, len(result.settings.seeds)
    lines = []
    for arm in result.arms:
        if arm.name not in SYNTHETIC_ARMS:
            continue
        said = []
        for to in ("real", "classical"):
            difference = arm.difference(to, metric)
            if difference is not None:
                verdict = cannot_tell(result, arm, to) or difference.verdict
                said.append(f"vs {to}: {verdict} ({difference_text(difference)} points)")
        lines.append(f"{arm.name} {'; '.join(said)}")
    if lines:
        interval = f"{CONFIDENCE:.0%} interval over {seeds} seeds" if seeds > 1 else "one seed: no interval, no verdict"
        lines.insert(0, f"{METRIC_NAMES[metric]}, paired by seed ({interval}); 'helps' and 'hurts' need the "
                        "whole interval on one side of 0")
    failed = failed_images(result)
    return ([failed] if failed else []) + lines + caveats(result)


def bottom_line(result: EvaluationResult) -> str:
    """One plain sentence: what to do with these synthetic images."""
    failed = failed_images(result)
    if failed is not None:
        return "Do not train on these images: " + failed.split(": no arm")[0] + "."
    metric = result.settings.metric
    arms = [arm for arm in result.arms if arm.name in SYNTHETIC_ARMS]
    against = "classical" if arm_named(result, "classical") is not None else "real"

    def judged(verdict: str) -> list[ArmSummary]:
        return [arm for arm in arms if (d := arm.difference(against, metric)) is not None and d.verdict == verdict]

    helps, hurts = judged("helps"), judged("hurts")
    if helps:
        best = max(helps, key=lambda arm: arm.difference(against, metric).mean_points)
        return (f"Use them as the {best.name} arm does: it beat {against} by "
                f"{difference_text(best.difference(against, metric))} points on real test data.")
    if not arms:
        return "No arm trained on synthetic images: this report measures real and classical alone."
    if all(cannot_tell(result, arm, against) for arm in arms):
        return (f"These measurements cannot tell: every synthetic arm against {against} is "
                f"{cannot_tell(result, arms[0], against).split(':')[0]}; see the verdicts.")
    if hurts and len(hurts) == len(arms):
        return (f"Do not use them: every synthetic arm fell below {against} (e.g. {hurts[0].name} "
                f"{difference_text(hurts[0].difference(against, metric))} points).")
    return (f"No evidence that they help: no synthetic arm beat {against} with its whole interval above 0; keep "
            f"{against}{' augmentation' if against == 'classical' else ' training'}, or try another arm or setting "
            "chosen on validation.")


def caveats(result: EvaluationResult) -> list[str]:
    """A shift of class prior an arm could gain from, and the worth of one test image on a small test set."""
    prior, lines = result.prior, []
    if prior is None:
        return lines
    closer = arms_nearer_the_test_shares(result)
    if prior.shifted and closer:
        lines.append(
            f"test class shares differ from train's (total variation {prior.distance:.2f}); {', '.join(closer)} "
            "train on shares nearer the test set's, so part of their difference can come from the class prior "
            "alone, not from the images"
        )
    short = mix_shortfall(result)
    if short:
        lines.append(short)
    if result.data.real_test.images < SMALL_TEST_SET:
        lines.append(
            f"{result.data.real_test.images} test images: one is worth {prior.points_per_test_image:.2f} accuracy "
            f"points, up to {prior.points_per_rarest_test_image:.2f} balanced-accuracy points"
        )
    return lines


def mix_shortfall(result: EvaluationResult) -> str | None:
    """A line when the synthetic output has fewer images of a class than the mix asked: its arms then train on other
    class shares than the real set's, which alone can move a score."""
    mixing = result.mixing
    wanted, added = mixing.synthetic_wanted_per_class, mixing.synthetic_per_class
    uses_mix = any(arm.name in MIXED_ARMS for arm in result.arms)
    if not uses_mix or not wanted or sum(wanted) == sum(added):
        return None
    short = [f"{name!r} {have:,} of {want:,}" for name, want, have in zip(result.class_names, wanted, added)
             if have < want]
    return (f"the {mixing.mix} mix asked {sum(wanted):,} synthetic images and the output has {sum(added):,} "
            f"({', '.join(short)}), so {', '.join(a.name for a in result.arms if a.name in MIXED_ARMS)} train on "
            "other class shares than the mix meant; synthesize more of those classes (--n, --per-class)")


def arms_nearer_the_test_shares(result: EvaluationResult) -> list[str]:
    """The arms whose training batches hold class shares clearly nearer the test set's than real train's."""
    test = np.array(result.prior.real_test)
    real_distance = _distance(result.prior.real_train, test)
    return [arm.name for arm in result.arms
            if arm.sampled_shares and _distance(arm.sampled_shares, test) < real_distance - CLOSER_PRIOR]


def _distance(shares, other: np.ndarray) -> float:
    return float(np.abs(np.array(shares) - other).sum() / 2)


def memorisation_line(found: Memorisation) -> str:
    """'2.4% (features), 0.3% (pixels) of 2,000 synthetic images ... (real test images: 4.8%, 3.1%)'."""
    features, pixels = found.features, found.pixels
    return (
        f"{percent(features.share_below)} (features), {percent(pixels.share_below)} (pixels) of "
        f"{found.synthetic_images:,} synthetic images are as near a real train image as the nearest "
        f"{found.percentile:g}% of train-to-train neighbours (real test images: "
        f"{percent(features.real_test_share_below)}, {percent(pixels.real_test_share_below)})"
    )
