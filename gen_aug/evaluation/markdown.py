"""report.md: the verdict and one table of arms first, then every metric, class shares, per class, image quality."""

from __future__ import annotations

from typing import Sequence

from gen_aug.evaluation.limits import cannot_tell
from gen_aug.evaluation.options import METRICS
from gen_aug.evaluation.result import EvaluationResult
from gen_aug.evaluation.wording import (
    METRIC_NAMES,
    arms_nearer_the_test_shares,
    bottom_line,
    difference_text,
    memorisation_line,
    percent,
    score_text,
    verdict_lines,
)

SAMPLES_FIGURE = "samples.png"
DIFFERENCES_FIGURE = "arms.png"
RECALL_FIGURE = "per_class_recall.png"
MEMORISATION_FIGURE = "memorisation.png"
CAPTIONS = {
    DIFFERENCES_FIGURE: "Each arm's paired difference to real and to classical, mean and 95% interval over seeds",
    RECALL_FIGURE: "Test recall per class and arm, mean and std over seeds",
    MEMORISATION_FIGURE: "The synthetic images nearest a real train image (above) and that real image (below)",
    SAMPLES_FIGURE: "Real test images (left) and synthetic images (right), one row per class",
}


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _figure(name: str, figures: Sequence[str]) -> list[str]:
    return ["", f"![{CAPTIONS[name]}]({name})", "", f"*{CAPTIONS[name]}.*"] if name in figures else []


def markdown(result: EvaluationResult, figures: Sequence[str] = ()) -> str:
    """The report as Markdown; `figures` are the PNG names written beside it."""
    metric = result.settings.metric
    lines = ["# genaug evaluation", "", f"**{bottom_line(result)}**", "", f"**Verdict** ({METRIC_NAMES[metric]}):", ""]
    lines += [f"- {line}" for line in verdict_lines(result)] or ["- no synthetic arm was run"]
    lines += ["", *arms_table(result)]
    lines += _figure(DIFFERENCES_FIGURE, figures)
    lines += ["", "## Every metric", "", *metrics_table(result)]
    lines += ["", "## Class shares", "", *shares_table(result)]
    lines += ["", "## Per class", "", *per_class_table(result)]
    lines += _figure(RECALL_FIGURE, figures)
    lines += ["", "## Image quality", "", *quality_table(result)]
    if result.memorisation is not None:
        lines += ["", "## Memorisation", "", memorisation_line(result.memorisation) + ".", "",
                  *memorisation_table(result)]
        lines += _figure(MEMORISATION_FIGURE, figures)
    lines += _figure(SAMPLES_FIGURE, figures)
    if result.tuning is not None:
        lines += ["", "## Chosen on validation", "", *tuning_table(result)]
    lines += ["", "## Settings", "", *settings_lines(result)]
    return "\n".join(lines) + "\n"


def arms_table(result: EvaluationResult) -> list[str]:
    """The lead table: each arm's headline metric (mean ± 95% interval) and its paired differences."""
    metric = result.settings.metric
    lines = [
        _row(["arm", "trains on", "images", f"{METRIC_NAMES[metric]} (mean ± 95% CI)", "vs real (points, 95% CI)",
              "verdict", "vs classical", "verdict"]),
        "| --- | --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for arm in [*result.arms, result.tstr]:
        cells = [f"**{arm.name}**", arm.training or "", f"{arm.train_images:,}", score_text(arm.score(metric))]
        for to in ("real", "classical"):
            difference = arm.difference(to, metric)
            verdict = None if difference is None else "cannot tell" if cannot_tell(result, arm, to) else \
                difference.verdict
            cells += [difference_text(difference), verdict] if difference is not None else ["", ""]
        lines.append(_row(cells))
    return lines


def metrics_table(result: EvaluationResult) -> list[str]:
    lines = [_row(["arm", *(f"{METRIC_NAMES[m]}" for m in METRICS)]), "| --- |" + " ---: |" * len(METRICS)]
    for arm in [*result.arms, result.tstr]:
        lines.append(_row([arm.name, *(score_text(arm.score(m)) for m in METRICS)]))
    return lines


def shares_table(result: EvaluationResult) -> list[str]:
    """Class shares of real train, real test and of each arm's batches (equal shares where it samples balanced)."""
    arms = [*result.arms, result.tstr]
    header = ["class", "real train", "real test", *(f"{arm.name} (batches)" for arm in arms)]
    lines = [_row(header), "| --- |" + " ---: |" * (len(header) - 1)]
    prior = result.prior
    for label, name in enumerate(result.class_names):
        cells = [name]
        cells += [percent(prior.real_train[label]), percent(prior.real_test[label])] if prior else ["", ""]
        cells += [percent(arm.sampled_shares[label]) if arm.sampled_shares else "" for arm in arms]
        lines.append(_row(cells))
    if prior is not None:
        caveat = prior.shifted and arms_nearer_the_test_shares(result)
        lines += ["", f"Train and test class shares differ by {prior.distance:.2f} (total variation)"
                  + ("; see the verdict's caveat." if caveat else
                     "; no arm trains on shares clearly nearer the test set's than real train's." if prior.shifted
                     else ".")]
    return lines


def per_class_table(result: EvaluationResult) -> list[str]:
    arms = [*result.arms, result.tstr]
    consistency, frechet, data = result.class_consistency, result.frechet_distance, result.data
    header = ["class", "real test", "synthetic", "consistency", "Fréchet", "reference recall",
              *(f"{arm.name} recall" for arm in arms)]
    lines = [_row(header), "| --- |" + " ---: |" * (len(header) - 1)]
    for label, name in enumerate(result.class_names):
        lines.append(_row([
            name, f"{data.real_test.class_counts[label]:,}", f"{data.synthetic.class_counts[label]:,}",
            percent(consistency.per_class[label]), _number(frechet.per_class[label]),
            percent(result.reference_classifier.per_class_recall[label]),
            *(percent(arm.per_class_recall_mean[label]) for arm in arms),
        ]))
    return lines


def quality_table(result: EvaluationResult) -> list[str]:
    consistency, frechet, quality = result.class_consistency, result.frechet_distance, result.precision_recall
    baseline = quality.real_train_vs_test
    return [
        "| metric | value | for comparison |",
        "| --- | --- | --- |",
        f"| reference classifier, real test accuracy | {percent(result.reference_classifier.test_accuracy)} | |",
        f"| class consistency (synthetic classified as their class) | {percent(consistency.overall)} | "
        "reference accuracy on real test |",
        f"| Fréchet distance, real test vs synthetic | {_number(frechet.overall)} | "
        f"real train vs real test: {_number(frechet.real_train_vs_test)} |",
        f"| precision / recall (k={quality.k}) | {quality.precision:.3f} / {quality.recall:.3f} | "
        f"real train vs real test: {baseline.precision:.3f} / {baseline.recall:.3f} |",
    ]


def memorisation_table(result: EvaluationResult) -> list[str]:
    found = result.memorisation
    lines = [_row(["space", "threshold", "real test", "synthetic, all classes", *result.class_names]),
             "| --- |" + " ---: |" * (3 + len(result.class_names))]
    for space in (found.features, found.pixels):
        lines.append(_row([space.space, f"{space.threshold:.3g}", percent(space.real_test_share_below),
                           percent(space.share_below), *(percent(share) for share in space.per_class)]))
    return lines


def tuning_table(result: EvaluationResult) -> list[str]:
    """The grid, each point's validation score per arm, and the point the test split saw."""
    tuning = result.tuning
    arms = tuning.points[0].arms
    lines = [f"Every point trained on real train and scored on `{tuning.validation.description}` "
             f"({tuning.validation.images:,} images, never the test set), {METRIC_NAMES[tuning.metric]}, mean over "
             "the seeds; the point whose best arm scored highest is the one every figure above was measured at.", "",
             _row(["setting", *arms, "chosen"]), "| --- |" + " ---: |" * len(arms) + " --- |"]
    for point in tuning.points:
        words = ", ".join(f"{key} {value:g}" for key, value in point.settings.items())
        lines.append(_row([words, *(percent(mean) for mean in point.means),
                           "yes" if dict(point.settings) == dict(tuning.chosen) else ""]))
    return lines


def settings_lines(result: EvaluationResult) -> list[str]:
    data, settings, mixing = result.data, result.settings, result.mixing
    share = f", real images repeated x{mixing.real_repeats}" if mixing.real_repeats > 1 else ""
    return [
        f"- real train: `{data.real_train.description}` ({data.real_train.images:,} images)",
        f"- real test: `{data.real_test.description}` ({data.real_test.images:,} images)",
        f"- synthetic: `{data.synthetic.description}` ({data.synthetic.images:,} images)",
        f"- mix: {mixing.mix}, ratio {mixing.ratio:g}: +{mixing.synthetic_images_added:,} synthetic images{share}",
        f"- classifier: {settings.network}, {settings.classifier.steps} steps of {settings.classifier.batch_size} "
        f"images, seeds {', '.join(map(str, settings.seeds))}; classical arms: {settings.policy}"
        f"{', flips' if settings.flip else ', no flips'}",
        f"- distances on at most {settings.sample_size:,} images per set (sample seed {settings.sample_seed}), "
        f"k={settings.k}",
    ]


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"
