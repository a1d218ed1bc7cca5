"""Choices made on validation: each point of a grid scored on the val split, never on test, one point chosen.

Guards: gen_aug/evaluation/tuning.py, gen_aug/evaluation/evaluate.py, gen_aug/evaluation/options.py, gen_aug/checks.py,
    gen_aug/pipeline.py
"""

import json
from pathlib import Path

import numpy as np
import pytest

from gen_aug.checks import from_dict
from gen_aug.data import LabelledImages, load_data
from gen_aug.errors import GenaugError
from gen_aug.evaluation.evaluate import evaluate, tuned_options, validation_set, validation_spec
from gen_aug.evaluation.markdown import markdown
from gen_aug.evaluation.options import EvaluationOptions
from gen_aug.evaluation.result import EvaluationResult
from gen_aug.evaluation.tuning import check_validation, classifier_runs, grid_points, tuned_arms
from gen_aug.synthesis.driver import synthesize
from gen_aug.synthesis.options import SynthesisOptions


def digits_npz(folder: Path) -> str:
    """builtin:digits as an npz with splits of its own: 6 train, 8 val and 8 test images per class, none shared."""
    train, test = load_data("builtin:digits"), load_data("builtin:digits?split=test")
    arrays = {}
    for split, data, first in (("train", train, 0), ("val", test, 0), ("test", test, 8)):
        keep = np.concatenate([np.flatnonzero(data.labels == label)[first : first + (6 if split == "train" else 8)]
                               for label in range(10)])
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = data.images[keep, 0], data.labels[keep]
    np.savez(folder / "digits.npz", **arrays)
    return f"npz:{folder}/digits.npz"


def test_a_grid_is_every_combination_first_key_slowest():
    points = grid_points({"swap_probability": (0.3, 0.6), "mix_ratio": (1.0, 2.0)})
    assert points == [{"swap_probability": 0.3, "mix_ratio": 1.0}, {"swap_probability": 0.3, "mix_ratio": 2.0},
                      {"swap_probability": 0.6, "mix_ratio": 1.0}, {"swap_probability": 0.6, "mix_ratio": 2.0}]


def test_a_grid_is_checked_as_every_other_option():
    with pytest.raises(GenaugError, match=r"^tune = 'steps' \(expected settings among swap_probability, mix_gamma, "
                                          r"mix_ratio, strength, guidance\)"):
        EvaluationOptions(tune={"steps": (10,)})
    with pytest.raises(GenaugError, match=r"^tune strength = 1\.5 \(expected a strength from 0 to 1\)"):
        EvaluationOptions(tune={"strength": (0.5, 1.5)})
    with pytest.raises(GenaugError, match=r"^tune guidance = nan \(expected 0 or a finite weight above\)"):
        EvaluationOptions(tune={"guidance": (float("nan"),)})
    with pytest.raises(GenaugError, match=r"^swap_probability = 2\.0 \(expected a probability"):
        EvaluationOptions(arms=("real", "variants"), tune={"swap_probability": (0.5, 2.0)})
    with pytest.raises(GenaugError, match=r"^tune swap_probability = \[0\.5, 0\.5\] \(expected one or more values"):
        EvaluationOptions(tune={"swap_probability": (0.5, 0.5)})
    with pytest.raises(GenaugError, match=r"\(expected 1 to 16 combinations\)"):
        EvaluationOptions(tune={"mix_ratio": tuple(range(5)), "mix_gamma": (0.5, 1, 2, 3)})
    with pytest.raises(GenaugError, match=r"^tune = \{mix_gamma\}: no arm of real, classical depends on it"):
        tuned_arms(EvaluationOptions(arms=("real", "classical"), tune={"mix_gamma": (0.5, 1.0)}))
    job = from_dict(EvaluationOptions, {"tune": {"mix_ratio": [1, 2]}}, "job.toml [evaluate]", job=True)
    assert job.tune == {"mix_ratio": (1.0, 2.0)}
    with pytest.raises(GenaugError, match=r"^job.toml \[evaluate\]: tune = \{'mix_ratio': 'x'\}: mix_ratio "
                                          r"\(expected a list of numbers\)"):
        from_dict(EvaluationOptions, {"tune": {"mix_ratio": "x"}}, "job.toml [evaluate]", job=True)


def test_the_validation_set_is_the_val_split_taken_whole_and_never_test(tmp_path):
    spec = digits_npz(tmp_path)
    options = EvaluationOptions(real=f"{spec}?limit_per_class=3", tune={"mix_ratio": (1.0,)})
    assert validation_spec(options) == f"{spec}?split=val"
    with pytest.raises(GenaugError, match=r"^--validation '.*split=test': a test split"):
        validation_spec(EvaluationOptions(real=spec, validation=f"{spec}?split=test", tune={"mix_ratio": (1.0,)}))
    train, test = load_data(spec), load_data(f"{spec}?split=test")
    with pytest.raises(GenaugError, match=r"the same images as the test set"):
        check_validation(test, train, test, "x")
    with pytest.raises(GenaugError, match=r"^tune: data builtin:digits: split 'val' does not exist .*expected "
                                          r"--validation SPEC"):
        validation_set(EvaluationOptions(real="builtin:digits", tune={"mix_ratio": (1.0,)}), train, test)


def test_each_point_is_scored_on_validation_and_the_best_is_chosen(tmp_path):
    spec = digits_npz(tmp_path)
    train, test, validation = (load_data(f"{spec}?split={split}") for split in ("train", "test", "val"))
    synthetic = LabelledImages(np.roll(train.images, 1, axis=3), train.labels, train.class_names, "shifted train")
    options = EvaluationOptions(real=spec, arms=("real", "classical", "synthetic", "distill"), seeds=(0, 1), steps=15,
                                tune={"mix_ratio": (0.5, 2.0)})
    tuning, chosen, folder = tuned_options(options, [({}, "shifted")], lambda folder: (synthetic, None), train,
                                           validation_set(options, train, test), lambda line: None)
    assert folder == "shifted"
    assert tuning.validation.fingerprint == validation.fingerprint != test.fingerprint  # test never scored
    assert [point.settings for point in tuning.points] == [{"mix_ratio": 0.5}, {"mix_ratio": 2.0}]
    assert all(point.arms == ("synthetic", "distill") and len(point.means) == 2 for point in tuning.points)
    best = max(tuning.points, key=lambda point: max(point.means))
    assert tuning.chosen == best.settings and chosen.mix_ratio == best.settings["mix_ratio"]
    assert chosen.tune == options.tune and chosen.arms == options.arms


@pytest.mark.ray
def test_evaluate_reports_the_grid_and_measures_test_at_the_chosen_point(ray_local, digits_cdm_snapshot, tmp_path,
                                                                        capfd):
    spec = digits_npz(tmp_path)
    synthesize(SynthesisOptions(digits_cdm_snapshot, str(tmp_path / "var"), n=None, variants_of=spec, per_image=2,
                                strength=(0.5,), workers=1, progress=False))
    options = EvaluationOptions(real=spec, synthetic=str(tmp_path / "var"), report=str(tmp_path / "report"),
                                arms=("real", "classical", "variants"), seeds=(0,), steps=10, sample_size=40,
                                tune={"swap_probability": (0.2, 0.9)})
    capfd.readouterr()
    result, folder = evaluate(options)
    # One bar over every run, the grid's on validation (variants at 2 points) and then TSTR and 3 arms on test.
    shown = capfd.readouterr().err.replace("\r", "\n").splitlines()
    finals = [line for line in shown if line.startswith("evaluate: 100%")]
    assert classifier_runs(options) == 6 and len(finals) == 1 and " 6/6 " in finals[0], finals
    report = json.loads((folder / "report.json").read_text())
    assert report["inputs"]["tune"] == {"swap_probability": [0.2, 0.9]}
    assert report["inputs"]["validation"] == f"{spec}?split=val"
    assert report["tuning"]["chosen"] == result.tuning.chosen and result.tuning.chosen["swap_probability"] in (0.2, 0.9)
    chosen = result.tuning.chosen["swap_probability"]
    assert f"with probability {chosen:g}" in result.arm("variants").training  # test saw the chosen point
    assert EvaluationResult.from_dict(report).tuning == result.tuning
    text = markdown(result)
    assert "## Chosen on validation" in text and f"| swap_probability {chosen:g} |" in text


CDM_JOB = """
[data]
spec = "{spec}"

[model]
family = "cdm"
width = 4
steps = 4

[train]
out = "{run}"
steps = 10
batch_size = 16
device = "cpu"
preview_every = 100
checkpoint_every = 100

[synthesize]
variants_of = "{spec}"
per_image = 1
workers = 1

[evaluate]
arms = ["real", "classical", "variants"]
seeds = [0]
steps = 10
sample_size = 40
tune = {{strength = [0.25, 0.75]}}
"""


@pytest.mark.ray
def test_run_makes_an_output_per_strength_and_tests_only_the_one_chosen_on_validation(ray_local, tmp_path):
    from gen_aug.config import load_job
    from gen_aug.pipeline import run_job
    from gen_aug.output.verification import verify

    spec = digits_npz(tmp_path)
    job_file = tmp_path / "job.toml"
    job_file.write_text(CDM_JOB.format(spec=spec, run=tmp_path / "run"))
    stages, result, report = run_job(load_job(job_file), echo=lambda line: None)
    assert [(stage.stage, stage.action) for stage in stages] == [
        ("train", "ran"), ("synthesize", "ran"), ("synthesize", "ran"), ("evaluate", "ran")]
    outputs = [tmp_path / "run" / f"synth-strength-{s}" for s in ("0.25", "0.75")]
    assert all(verify(str(out)).ok for out in outputs) and not (tmp_path / "run" / "synth").exists()
    strengths = [json.loads((out / "_manifest.json").read_text())["variants"]["strengths"] for out in outputs]
    assert strengths == [[0.25], [0.75]]
    tuning = result.tuning
    assert [point.settings for point in tuning.points] == [{"strength": 0.25}, {"strength": 0.75}]
    assert tuning.validation.fingerprint == load_data(f"{spec}?split=val").fingerprint
    assert tuning.validation.fingerprint != load_data(f"{spec}?split=test").fingerprint  # test never scored
    chosen = max(tuning.points, key=lambda point: (point.best(), -tuning.points.index(point))).settings
    assert tuning.chosen == chosen
    assert result.data.synthetic.description.endswith(f"synth-strength-{chosen['strength']:g}")  # test saw it alone
    assert "| strength 0.25 |" in markdown(result) and "| strength 0.75 |" in markdown(result)
    stages, _, _ = run_job(load_job(job_file), echo=lambda line: None)
    assert [stage.action for stage in stages] == ["skipped"] * 4


def test_a_synthesis_setting_needs_the_outputs_that_genaug_run_makes(tmp_path):
    spec = digits_npz(tmp_path)
    options = EvaluationOptions(real=spec, synthetic="x", arms=("real", "variants"), tune={"strength": (0.3, 0.5)})
    with pytest.raises(GenaugError, match=r"^tune strength: a synthesis setting, with 2 output\(s\) to compare and 0 given "
                                          r"\(expected genaug run"):
        evaluate(options)
