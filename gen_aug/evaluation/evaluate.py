"""`genaug evaluate`: a real train split, a test set and a synthesis output, through every metric, into a report."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Callable

from gen_aug.data import DataSpec, LabelledImages, load_data, parse_spec
from gen_aug.errors import GenaugError
from gen_aug.evaluation.mixing import check_compatible
from gen_aug.evaluation.options import CLASS_MIX_ARMS, VARIANT_ARMS, EvaluationOptions
from gen_aug.evaluation.result import EvaluationResult


# Options that pick a subset of the train split (the test split is taken whole); those the data spec has.
TRAIN_SUBSET_OPTIONS = ("limit_per_class", "class_fraction")


def trained_on(synthetic: str) -> str:
    """The data spec the output's model was trained on, as its manifest records it, checked to read the same images
    today: --real's default, so a user need not retype a spec's options (?resolution=64&resize=pad)."""
    from gen_aug.output.manifest import load_manifest

    _, manifest, _, _ = load_manifest(synthetic, "--synthetic")
    recorded = ((manifest.get("snapshot") or {}).get("meta") or {}).get("data") or {}
    spec = recorded.get("description")
    if not isinstance(spec, str):
        raise GenaugError(f"--real: not given, and {synthetic!r}'s manifest does not record the data its model was "
                          "trained on (expected --real SPEC)")
    if load_data(spec).fingerprint != recorded.get("fingerprint"):
        raise GenaugError(f"--real: not given, and {spec!r}, the data {synthetic!r}'s model was trained on, reads "
                          "other images today than it did then (expected --real SPEC naming the real set)")
    return spec


def real_splits(spec: str) -> tuple[LabelledImages, LabelledImages]:
    """(train, test) of a data spec: the test split keeps resolution and channels but not the train subset options."""
    parsed = _train_spec(spec)
    whole = {field.name: None for field in dataclasses.fields(parsed) if field.name in TRAIN_SUBSET_OPTIONS}
    return load_data(parsed), load_data(dataclasses.replace(parsed, split="test", **whole))


def _train_spec(spec: str) -> DataSpec:
    parsed = parse_spec(spec)
    if parsed.split != "train":
        raise GenaugError(
            f"--real {spec!r}: split={parsed.split} (expected the train split; its test split is the test set)"
        )
    return parsed


def evaluation_sets(options: EvaluationOptions) -> tuple[LabelledImages, LabelledImages]:
    """(train, test): --real's train split, and --test or, without it, --real's test split."""
    if options.test is None:
        return real_splits(options.real)
    train = load_data(_train_spec(options.real))
    return train, load_test_set(options.test, train)


def load_test_set(spec: str, train: LabelledImages) -> LabelledImages:
    """The images of data spec `spec`, once they are known to have the classes and image shape of `train`."""
    test = load_data(spec)
    check_compatible(train, test, f"--test {spec!r}", "--real's train split's", "; ?resolution=R&channels=C converts")
    return test


def _check_device(device: str) -> None:
    """Before any data is read: a CUDA device asked for must be there."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise GenaugError("--device cuda: no CUDA device is visible (expected --device cpu or auto)")


def evaluation_inputs(options: EvaluationOptions, synthetic_sha256: str) -> dict:
    """What decides a report's numbers: a report.json with the same inputs need not be computed again."""
    inputs = {
        "real": options.real,
        "synthetic_manifest_sha256": synthetic_sha256,
        "seeds": list(options.seeds),
        "classifier": dataclasses.asdict(options.classifier_config()),
        "network": options.classifier,
        "arms": list(options.arms),
        "metric": options.metric,
        "mix": options.mix,
        "mix_ratio": options.mix_ratio,
        "real_share": options.real_share,
        "policy": options.policy,
        "flip": options.flip,
        "sample_size": options.sample_size,
        "k": options.k,
    }
    if options.test is not None:  # absent without --test, so the reports from before --test still match
        inputs["test"] = options.test
    if any(arm in VARIANT_ARMS for arm in options.arms):  # likewise
        inputs["swap_probability"] = options.swap_probability
    if any(arm in CLASS_MIX_ARMS for arm in options.arms):
        inputs["mix_gamma"] = options.mix_gamma
    if options.tune is not None:
        inputs["tune"] = {key: list(values) for key, values in options.tune.items()}
        inputs["validation"] = validation_spec(options)
    if options.synthetic_outputs:  # the outputs a synthesis setting's grid compares: each of them decides the choice
        inputs["synthetic_outputs_sha256"] = [manifest_sha256(out) for out in options.synthetic_outputs]
    return inputs


def validation_spec(options: EvaluationOptions) -> str:
    """The set a `tune` grid is scored on: --validation, or --real's val split taken whole, as the test split is."""
    if options.validation is not None:
        if parse_spec(options.validation).split == "test":
            raise GenaugError(f"--validation {options.validation!r}: a test split (expected a val split: no choice "
                              "is made on test)")
        return options.validation
    parsed = _train_spec(options.real)
    whole = {field.name: None for field in dataclasses.fields(parsed) if field.name in TRAIN_SUBSET_OPTIONS}
    return str(dataclasses.replace(parsed, split="val", **whole))


def validation_set(options: EvaluationOptions, real_train: LabelledImages,
                   real_test: LabelledImages) -> LabelledImages | None:
    """The set a `tune` grid is scored on, once it is known to be neither the test set nor train; None: no grid."""
    from gen_aug.evaluation.tuning import check_validation

    if options.tune is None:
        return None
    spec = validation_spec(options)
    try:
        validation = load_data(spec)
    except GenaugError as error:
        raise GenaugError(f"tune: {error}; expected --validation SPEC (job key validation) of a set of its own") from None
    check_compatible(real_train, validation, f"--validation {spec!r}", "--real's train split's")
    check_validation(validation, real_train, real_test, spec)
    return validation


def output_grid(options: EvaluationOptions) -> list[tuple[dict[str, float], str]]:
    """(the synthesis point, its output folder) of every output the evaluation compares: --synthetic alone unless
    the grid has synthesis settings, whose outputs `genaug run` made one per point, in grid order."""
    from gen_aug.evaluation.tuning import grid_points, split_grid

    made_grid, _ = split_grid(options.tune)
    if not made_grid:
        return [({}, options.synthetic)]
    points = grid_points(made_grid)
    if len(options.synthetic_outputs) != len(points):
        raise GenaugError(
            f"tune {', '.join(made_grid)}: a synthesis setting, with {len(points)} output(s) to compare and "
            f"{len(options.synthetic_outputs)} given (expected genaug run with the grid in the job's [evaluate] tune: "
            "it makes one output per value)"
        )
    return list(zip(points, options.synthetic_outputs))


def manifest_sha256(out: str) -> str:
    from gen_aug.output.manifest import MANIFEST, manifest_name
    from gen_aug.output.storage import open_location

    location = open_location(out)
    name = manifest_name(location)
    if name is None:
        raise GenaugError(f"--synthetic {out!r}: no {MANIFEST} (expected the folder of a finished genaug synthesize)")
    return hashlib.sha256(location.read(name)).hexdigest()


def tuned_options(options: EvaluationOptions, outputs: list[tuple[dict[str, float], str]], load,
                  real_train: LabelledImages, validation: LabelledImages, log: Callable[[str], None]):
    """(the grid's record, the options at the point chosen on validation, the output folder chosen)."""
    from gen_aug.evaluation.tuning import split_grid, tune

    log(f"tune on {validation.description} ({len(validation.images):,} images): {len(options.tune)} setting(s)")
    device = None if options.device == "auto" else options.device
    tuning, index = tune(real_train, validation, [(made_at, lambda folder=folder: load(folder))
                                                  for made_at, folder in outputs],
                         options, options.classifier_config(), device=device, log=log)
    log("chosen on validation: " + ", ".join(f"{key} {value:g}" for key, value in tuning.chosen.items()))
    _, own_grid = split_grid(options.tune)
    own = {key: value for key, value in tuning.chosen.items() if key in own_grid}
    return tuning, dataclasses.replace(options, **own, synthetic=outputs[index][1]), outputs[index][1]


def evaluate(
    options: EvaluationOptions, log: Callable[[str], None] = lambda message: None
) -> tuple[EvaluationResult, Path]:
    """Every metric of the synthetic output against the real sets, written as a report; returns (result, folder)."""
    from gen_aug.evaluation.measure import evaluate_images
    from gen_aug.evaluation.parallel import one_bar
    from gen_aug.evaluation.report import REPORT_JSON, write_report
    from gen_aug.evaluation.tuning import classifier_runs
    from gen_aug.output.reader import load_synthetic

    if options.real is None or options.synthetic is None:
        raise GenaugError(
            f"evaluation: real = {options.real!r}, synthetic = {options.synthetic!r} "
            "(expected a data spec and the folder of a finished genaug synthesize)"
        )
    _check_device(options.device)
    report_dir = options.report_dir()
    _check_report_outside(report_dir, options.synthetic)
    real_train, real_test = evaluation_sets(options)
    outputs = output_grid(options)
    inputs = evaluation_inputs(options, manifest_sha256(options.synthetic))
    validation = validation_set(options, real_train, real_test)
    loaded = {}

    def load(folder: str):
        """(the output's images, their variant sources), one output in memory at a time."""
        if folder not in loaded:
            loaded.clear()
            # Sources first: variants of other images are refused before a shard is read.
            sources = variant_sources(dataclasses.replace(options, synthetic=folder), real_train)
            loaded[folder] = (load_synthetic(folder, real_train.class_names), sources)
            log(f"{len(loaded[folder][0].images):,} synthetic images of {folder} read, every shard as its manifest says")
        return loaded[folder]

    load(outputs[0][1])
    log(_rough_cost(options, real_train))  # once the inputs have passed their checks: a refusal is one line alone
    tuning, chosen, folder = None, options, outputs[0][1]
    with one_bar(classifier_runs(options)):  # the grid's runs on validation and the arms' on test, on one bar
        if validation is not None:
            tuning, chosen, folder = tuned_options(options, outputs, load, real_train, validation, log)
        synthetic, sources = load(folder)
        result = dataclasses.replace(evaluate_images(real_train, real_test, synthetic, chosen, log=log,
                                                     variant_sources=sources), inputs=inputs, tuning=tuning)
    # A stale report.json beside new figures would vouch for them: it goes first, the new one comes last.
    (report_dir / REPORT_JSON).unlink(missing_ok=True)
    write_report(result, report_dir, real=real_test, synthetic=synthetic, real_train=real_train)
    return result, report_dir


def _rough_cost(options: EvaluationOptions, real_train: LabelledImages) -> str:
    """What the evaluation will train and roughly how long here, from a few timed classifier steps."""
    from gen_aug.evaluation.parallel import jobs_for, seconds_per_classifier_step
    from gen_aug.evaluation.tuning import classifier_runs
    from gen_aug.units import duration

    device = None if options.device == "auto" else options.device
    runs = classifier_runs(options)
    at_once = min(runs, jobs_for(options.jobs, device, runs * options.steps))
    step_s = seconds_per_classifier_step(real_train, options.classifier_config(), device)
    return (f"runs         {runs} classifier runs of {options.steps:,} steps, {at_once} at once; roughly "
            f"{duration(runs * options.steps * step_s / at_once)} here")


def variant_sources(options: EvaluationOptions, real_train: LabelledImages):
    """For the variants arms: each synthetic image's source (real train image, its class, the strength); None where
    no arm needs it or the output holds no variants (the arms then say so)."""
    from gen_aug.evaluation.swap import VariantProvenance, check_variants_of
    from gen_aug.output.reader import SyntheticImages

    if not any(arm in VARIANT_ARMS for arm in options.arms):
        return None
    reader = SyntheticImages(options.synthetic)
    variants = reader.job_settings().variants
    if variants is None:
        return None
    check_variants_of(variants.to_dict(), real_train, options.synthetic)
    columns = reader.columns(("source_index", "source_label", "strength"))
    return VariantProvenance(columns["source_index"], columns["source_label"], columns["strength"],
                             variants.mix_classes)


def _check_report_outside(report_dir: Path, synthetic: str) -> None:
    """A report inside the synthetic folder would be files its manifest does not list: verify would fail."""
    if "://" in synthetic:
        return
    if report_dir.resolve().is_relative_to(Path(synthetic).resolve()):
        raise GenaugError(
            f"--report {str(report_dir)!r}: inside the synthetic folder {synthetic!r} (expected a folder outside it)"
        )


def describe_evaluation(result: EvaluationResult, report_dir: Path) -> str:
    """The summary `genaug evaluate` prints: the report's path, the image metrics, one line per arm, the verdicts."""
    from gen_aug.evaluation.wording import arm_line, bottom_line, memorisation_line, verdict_lines

    frechet, quality = result.frechet_distance, result.precision_recall
    baseline = quality.real_train_vs_test
    lines = [
        f"report           {report_dir / 'report.md'}",
        f"reference        {100 * result.reference_classifier.test_accuracy:.1f}% accuracy on real test",
        f"consistency      {100 * result.class_consistency.overall:.1f}% of synthetic images classified as "
        "their class",
        f"Fréchet          {frechet.overall:.3g} real test vs synthetic (real train vs test: "
        f"{frechet.real_train_vs_test:.3g})",
        f"precision/recall {quality.precision:.3f} / {quality.recall:.3f} (real train vs test: "
        f"{baseline.precision:.3f} / {baseline.recall:.3f})",
    ]
    if result.memorisation is not None:
        lines.append(f"memorisation     {memorisation_line(result.memorisation)}")
    metric = result.settings.metric
    lines += [f"{'TSTR':<16} {arm_line(result.tstr, metric)}"]
    lines += [f"{arm.name:<16} {arm_line(arm, metric)}" for arm in result.arms]
    lines += [f"verdict          {line}" for line in verdict_lines(result)]
    lines.append(f"in a line        {bottom_line(result)}")
    return "\n".join(lines)
