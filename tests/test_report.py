"""Report: report.json round-trips the result, report.md leads with the arms and the verdict, figures are PNGs.

Guards: gen_aug/evaluation/report.py, gen_aug/evaluation/markdown.py, gen_aug/evaluation/figures.py,
    gen_aug/evaluation/result.py, gen_aug/evaluation/wording.py, gen_aug/evaluation/evaluate.py, gen_aug/atomic.py
"""

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gen_aug.data import LabelledImages, load_data
from gen_aug.classifiers.classifier import ClassifierConfig
from gen_aug.evaluation.evaluate import describe_evaluation
from gen_aug.evaluation.figures import recall_figure, recall_limits
from gen_aug.evaluation.limits import cannot_tell
from gen_aug.evaluation.markdown import DIFFERENCES_FIGURE, MEMORISATION_FIGURE, RECALL_FIGURE, SAMPLES_FIGURE
from gen_aug.evaluation.measure import evaluate_images
from gen_aug.evaluation.options import EvaluationOptions
from gen_aug.evaluation.report import read_report, sample_grid, write_report
from gen_aug.evaluation.result import EvaluationResult
from gen_aug.evaluation.wording import difference_text, score_text

OLD_REPORT = Path(__file__).parent / "data" / "report-before-arms.json"  # written by genaug before --arms
FAST = ClassifierConfig(width=4, feature_dim=16, steps=30, batch_size=64)


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    train, test = load_data("builtin:digits"), load_data("builtin:digits?split=test")
    # Real test images shifted by one pixel stand in for a generator's output.
    synthetic = LabelledImages(np.roll(test.images, 1, axis=3), test.labels, test.class_names, "shifted test")
    options = EvaluationOptions(seeds=(0, 1), sample_size=300)
    result = evaluate_images(train, test, synthetic, options, config=FAST,
                             cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    return result, train, test, synthetic


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    """Class 0 of the train split cut to 14 images, a balance mix: the test set's class shares differ from train's."""
    train, test = load_data("builtin:digits"), load_data("builtin:digits?split=test")
    zeros = np.flatnonzero(train.labels == 0)
    real = train.select(np.setdiff1d(np.arange(len(train.labels)), zeros[14:]), "digits, class 0 cut")
    plenty = LabelledImages(np.concatenate([train.images] * 2), np.concatenate([train.labels] * 2),
                            train.class_names, "twice the train split")
    options = EvaluationOptions(seeds=(0, 1), arms=("real", "synthetic", "reweighted"), mix="balance",
                                metric="balanced_accuracy", sample_size=300)
    return evaluate_images(real, test, plenty, options, config=FAST, cache_dir=tmp_path_factory.mktemp("cache"),
                           progress=False)


def test_report_files_hold_the_result_and_figures_are_pngs(evaluation, tmp_path):
    result, train, test, synthetic = evaluation
    written = write_report(result, tmp_path / "report", real=test, synthetic=synthetic, real_train=train)
    figures = [DIFFERENCES_FIGURE, RECALL_FIGURE, MEMORISATION_FIGURE, SAMPLES_FIGURE]
    assert [p.name for p in written] == [*figures, "report.md", "report.json"]
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == sorted(p.name for p in written)  # no temporaries
    assert json.loads((tmp_path / "report" / "report.json").read_text()) == result.to_dict()
    assert read_report(tmp_path / "report" / "report.json") == result
    for name in figures:
        with Image.open(tmp_path / "report" / name) as picture:
            picture.verify()
            assert picture.format == "PNG" and picture.width > 300 and picture.height > 200


def test_report_md_leads_with_the_verdict_and_the_table_of_arms(evaluation, tmp_path):
    result, _, _, _ = evaluation
    write_report(result, tmp_path)
    text = (tmp_path / "report.md").read_text()
    head = text.split("## ")[0]  # everything before the first section
    synthetic = result.arm("synthetic")
    versus_real = synthetic.difference("real", "accuracy")
    verdict = cannot_tell(result, synthetic, "real") or versus_real.verdict  # 2 seeds of a fast net: too uncertain
    assert f"- synthetic vs real: {verdict} ({difference_text(versus_real)} points)" in head
    row = next(line for line in head.splitlines() if line.startswith("| **synthetic** |"))
    assert score_text(synthetic.accuracy) in row and difference_text(versus_real) in row
    assert difference_text(synthetic.difference("classical", "accuracy")) in row
    assert [line.split(" | ")[0] for line in head.splitlines() if line.startswith("| **")] == [
        f"| **{name}**" for name in (*result.settings.arms, "tstr")
    ]
    assert "355 test images: one is worth 0.28 accuracy points" in head
    assert SAMPLES_FIGURE not in text and MEMORISATION_FIGURE not in text  # drawn only with the images
    assert f"]({DIFFERENCES_FIGURE})" in text and f"]({RECALL_FIGURE})" in text


def test_a_shifted_class_prior_is_named_beside_the_arms_that_move_towards_it(imbalanced, tmp_path):
    prior = imbalanced.prior
    assert prior.shifted and prior.real_train[0] < 0.02 and prior.real_test[0] == pytest.approx(36 / 355, abs=0.01)
    synthetic = imbalanced.arm("synthetic")
    assert len(set(synthetic.class_counts)) == 1  # the balance mix: every class at the same count
    assert imbalanced.arm("reweighted").sampled_shares == pytest.approx([0.1] * 10)
    summary = describe_evaluation(imbalanced, tmp_path)
    caveat = next(line for line in summary.splitlines() if "class prior" in line)
    assert "synthetic, reweighted train on shares nearer the test set's" in caveat
    assert "balanced accuracy, paired by seed" in summary
    write_report(imbalanced, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert caveat.removeprefix("verdict          ") in report and "(total variation); see the verdict's caveat." in report


def test_reports_from_before_arms_and_before_real_share_read_back():
    old = json.loads(OLD_REPORT.read_text())
    result = read_report(OLD_REPORT)
    assert [arm.name for arm in result.arms] == ["real", "synthetic"] and result.tstr.name == "tstr"
    assert result.arm("real").accuracy.per_seed == tuple(old["augmentation"]["real_only"]["accuracy_per_seed"])
    assert result.arm("synthetic").per_class_recall_mean == tuple(
        old["augmentation"]["real_plus_synthetic"]["per_class_recall_mean"])
    assert result.mixing.synthetic_images_added == old["augmentation"]["synthetic_images_added"]
    assert result.inputs == old["inputs"] and result.memorisation is None and result.prior is None
    del old["settings"]["real_share"], old["augmentation"]["real_share"], old["augmentation"]["real_repeats"]
    older = EvaluationResult.from_dict(old)
    assert older.mixing.real_repeats == 1 and older.settings.real_share is None
    assert describe_evaluation(older, Path("r")).count("\n") > 5  # an old report still prints


def test_inputs_come_last_when_known(evaluation):
    result, _, _, _ = evaluation
    assert "inputs" not in result.to_dict()
    inputs = {"real": "builtin:digits", "seeds": [0, 1]}
    known = dataclasses.replace(result, inputs=inputs)
    assert list(known.to_dict())[-1] == "inputs" and known.to_dict()["inputs"] == inputs


def test_recall_figure_fits_long_class_names_and_classes_without_test_images(evaluation):
    result, _, _, _ = evaluation
    table = json.loads(json.dumps(result.to_dict()))
    table["class_names"] = [f"class {i} with a long descriptive name" for i in range(10)]
    for arm in [*table["arms"], table["tstr"]]:
        arm["per_class_recall_mean"][3] = arm["per_class_recall_std"][3] = None
    with Image.open(io.BytesIO(recall_figure(EvaluationResult.from_dict(table)))) as picture:
        assert picture.format == "PNG" and picture.width > 600


def test_the_recall_axis_is_fitted_to_the_points_so_a_few_points_apart_show():
    low, high = recall_limits(np.array([0.81, 0.84, 0.86, 0.89, np.nan]))
    assert 0.79 < low < 0.81 and 0.89 < high < 0.91  # 8 points span most of the axis, not a twelfth of it
    assert recall_limits(np.array([0.97, 1.03])) == pytest.approx((0.96, 1.02))  # a whisker past 1 stops at the top
    assert recall_limits(np.array([0.5, 0.5])) == pytest.approx((0.49, 0.51))
    assert recall_limits(np.array([np.nan])) == (0.0, 1.02)  # no class with test images: the whole range


@pytest.mark.parametrize("text", ["{", "[1]", '{"genaug_version": "0.1.0"}', None])
def test_a_report_json_that_is_no_report_reads_as_none(text, tmp_path):
    if text is not None:
        (tmp_path / "report.json").write_text(text)
    assert read_report(tmp_path / "report.json") is None


def test_sample_grid_places_real_left_and_synthetic_right_per_class():
    classes = ("zero", "one")

    def coloured(rgb, labels):
        pixels = np.zeros((len(labels), 3, 8, 8), np.uint8) + np.array(rgb, np.uint8)[None, :, None, None]
        return LabelledImages(pixels, np.array(labels), classes, str(rgb))

    blue, red = (0, 0, 200), (200, 0, 0)
    picture = np.asarray(sample_grid(coloured(blue, [0, 1, 0, 1, 1]), coloured(red, [1, 1, 0, 0]), per_class=2))
    is_blue, is_red = np.all(picture == blue, axis=2), np.all(picture == red, axis=2)
    tile = 48 * 48  # 8-pixel images are enlarged six times
    assert is_blue.sum() == 4 * tile and is_red.sum() == 4 * tile  # two per class; the fifth real image is left out
    assert np.flatnonzero(is_blue.any(axis=0)).max() < np.flatnonzero(is_red.any(axis=0)).min()
    rows_blue, rows_red = np.flatnonzero(is_blue.any(axis=1)), np.flatnonzero(is_red.any(axis=1))
    assert np.array_equal(rows_blue, rows_red) and len(rows_blue) == 2 * 48
