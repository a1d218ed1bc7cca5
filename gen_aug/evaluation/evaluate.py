"""`genaug evaluate`: a real set's train and test splits and a synthesis output, through every metric, into a report."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gen_aug.evaluation.classifier import ClassifierConfig
from gen_aug.data import LabelledImages, load_data, parse_spec
from gen_aug.errors import GenaugError

REPORT_JSON = "report.json"


@dataclass(frozen=True)
class EvaluationOptions:
    real: str  # data spec: its train split trains every classifier, its test split (no limit_per_class) tests them
    synthetic: str  # the folder of a finished `genaug synthesize`
    report: str | None = None  # report folder; None: the synthetic folder's path + '-report'
    seeds: tuple[int, ...] = (0, 1, 2)  # one classifier per seed for each of TSTR, real only, real + synthetic
    steps: int = 1000  # classifier optimiser steps: the same budget for every training set
    mix_ratio: float = 1.0  # synthetic images added per real training image
    sample_size: int = 2000  # images per set for Fréchet distance and precision/recall
    k: int = 3  # neighbours for precision/recall
    device: str = "auto"  # auto: cuda when visible
    real_share: float | None = None  # real images repeated to about this share of real + synthetic; None: once

    def classifier(self) -> ClassifierConfig:
        return dataclasses.replace(ClassifierConfig(), steps=self.steps)

    def report_dir(self) -> Path:
        if self.report is not None:
            return Path(self.report)
        if "://" in self.synthetic:
            raise GenaugError(f"--synthetic {self.synthetic!r}: a URI (expected --report DIR for the report's folder)")
        return Path(self.synthetic.rstrip("/") + "-report")


def real_splits(spec: str) -> tuple[LabelledImages, LabelledImages]:
    """(train, test) of a data spec: the test split keeps resolution and channels but not limit_per_class."""
    parsed = parse_spec(spec)
    if parsed.split != "train":
        raise GenaugError(
            f"--real {spec!r}: split={parsed.split} (expected the train split; its test split is the test set)"
        )
    return load_data(parsed), load_data(dataclasses.replace(parsed, split="test", limit_per_class=None))


def evaluation_inputs(options: EvaluationOptions, manifest_sha256: str) -> dict:
    """What decides a report's numbers: a report.json with the same inputs need not be computed again."""
    return {
        "real": options.real,
        "synthetic_manifest_sha256": manifest_sha256,
        "seeds": list(options.seeds),
        "classifier": dataclasses.asdict(options.classifier()),
        "mix_ratio": options.mix_ratio,
        "real_share": options.real_share,
        "sample_size": options.sample_size,
        "k": options.k,
    }


def manifest_sha256(out: str) -> str:
    from gen_aug.synthesis.manifest import MANIFEST
    from gen_aug.synthesis.storage import open_location

    location = open_location(out)
    if not location.exists(MANIFEST):
        raise GenaugError(f"--synthetic {out!r}: no {MANIFEST} (expected the folder of a finished genaug synthesize)")
    return hashlib.sha256(location.read(MANIFEST)).hexdigest()


def evaluate(options: EvaluationOptions, log: Callable[[str], None] = lambda message: None) -> tuple[dict, Path]:
    """Every metric of the synthetic output against the real splits, written as a report; returns (result, folder)."""
    from gen_aug.evaluation.metrics import evaluate_images
    from gen_aug.synthesis.reader import load_synthetic
    from gen_aug.evaluation.report import write_report

    if not options.seeds:
        raise GenaugError("--seeds: none given (expected one or more whole numbers, e.g. 0,1,2)")
    report_dir = options.report_dir()
    _check_report_outside(report_dir, options.synthetic)
    real_train, real_test = real_splits(options.real)
    inputs = evaluation_inputs(options, manifest_sha256(options.synthetic))
    synthetic = load_synthetic(options.synthetic, real_train.class_names)
    log(f"{len(synthetic.images):,} synthetic images read, every shard as its manifest says")
    result = evaluate_images(
        real_train, real_test, synthetic, seeds=options.seeds, config=options.classifier(),
        mix_ratio=options.mix_ratio, real_share=options.real_share, sample_size=options.sample_size, k=options.k,
        device=None if options.device == "auto" else options.device, log=log,
    )
    result["inputs"] = inputs
    # A stale report.json beside new figures would vouch for them: it goes first, the new one comes last.
    (report_dir / REPORT_JSON).unlink(missing_ok=True)
    write_report(result, report_dir, real=real_test, synthetic=synthetic)
    return result, report_dir


def _check_report_outside(report_dir: Path, synthetic: str) -> None:
    """A report inside the synthetic folder would be files its manifest does not list: verify would fail."""
    if "://" in synthetic:
        return
    if report_dir.resolve().is_relative_to(Path(synthetic).resolve()):
        raise GenaugError(
            f"--report {str(report_dir)!r}: inside the synthetic folder {synthetic!r} (expected a folder outside it)"
        )


def describe_evaluation(result: dict, report_dir: Path) -> str:
    """The summary `genaug evaluate` prints: one line per metric, the report's path first."""
    from gen_aug.evaluation.report import repeats_note

    def mean_std(summary: dict) -> str:
        return f"{100 * summary['accuracy_mean']:.1f}% ± {100 * summary['accuracy_std']:.1f}"

    seeds = len(result["settings"]["seeds"])
    frechet, quality, augmentation = result["frechet_distance"], result["precision_recall"], result["augmentation"]
    baseline = quality["real_train_vs_test"]
    return "\n".join([
        f"report           {report_dir / 'report.md'}",
        f"reference        {100 * result['reference_classifier']['test_accuracy']:.1f}% accuracy on real test",
        f"consistency      {100 * result['class_consistency']['overall']:.1f}% of synthetic images classified as "
        "their class",
        f"Fréchet          {frechet['overall']:.3g} real test vs synthetic (real train vs test: "
        f"{frechet['real_train_vs_test']:.3g})",
        f"precision/recall {quality['precision']:.3f} / {quality['recall']:.3f} (real train vs test: "
        f"{baseline['precision']:.3f} / {baseline['recall']:.3f})",
        f"TSTR             {mean_std(result['tstr'])} trained on synthetic only ({seeds} seeds)",
        f"real only        {mean_std(augmentation['real_only'])}",
        f"real + synthetic {mean_std(augmentation['real_plus_synthetic'])} "
        f"(+{augmentation['synthetic_images_added']:,} images{repeats_note(augmentation)}): "
        f"{augmentation['gain_points']:+.2f} points",
    ])
