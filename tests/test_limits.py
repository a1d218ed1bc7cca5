"""Verdicts that know their limits (gen_aug/evaluation/limits.py, wording.bottom_line): synthetic images that fail as
images, no headroom and intervals wider than any plausible gain are said in the verdict's place, on sets built to
trigger them and not on the README job's recorded report.

Guards: gen_aug/evaluation/limits.py, gen_aug/evaluation/wording.py, gen_aug/evaluation/markdown.py
"""

from pathlib import Path

import numpy as np
import pytest

from gen_aug.data import LabelledImages, load_data
from gen_aug.classifiers.classifier import ClassifierConfig
from gen_aug.evaluation.evaluate import describe_evaluation
from gen_aug.evaluation.limits import failed_images, cannot_tell, images_to_see_gain
from gen_aug.evaluation.markdown import markdown
from gen_aug.evaluation.measure import evaluate_images
from gen_aug.evaluation.options import EvaluationOptions
from gen_aug.evaluation.report import read_report
from gen_aug.evaluation.wording import bottom_line, verdict_lines

FAST = ClassifierConfig(width=4, feature_dim=16, steps=30, batch_size=64)
ARMS = ("real", "classical", "synthetic", "classical+synthetic")


def run(train, test, synthetic, cache):
    options = EvaluationOptions(seeds=(0, 1), arms=ARMS, sample_size=300)
    return evaluate_images(train, test, synthetic, options, config=FAST, cache_dir=cache, progress=False)


@pytest.fixture(scope="module")
def digits():
    return load_data("builtin:digits"), load_data("builtin:digits?split=test")


def test_noise_images_are_said_to_fail_as_images_before_any_verdict(digits, tmp_path):
    train, test = digits
    rng = np.random.default_rng(0)
    noise = LabelledImages(rng.integers(0, 256, size=train.images.shape, dtype=np.uint8), train.labels,
                           train.class_names, "uniform noise")
    result = run(train, test, noise, tmp_path)
    said = failed_images(result)
    assert said is not None and said.startswith("the synthetic images fail as images (")
    assert "where chance is 10.0%" in said
    assert verdict_lines(result)[0] == said
    assert bottom_line(result).startswith("Do not train on these images: the synthetic images fail as images")
    text = markdown(result)
    assert text.splitlines()[2] == f"**{bottom_line(result)}**"
    assert f"in a line        {bottom_line(result)}" in describe_evaluation(result, tmp_path)


def test_a_set_every_arm_scores_full_on_says_there_is_no_room_to_tell(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 60)
    images = np.where(labels[:, None, None, None] == 0, 20, 235).astype(np.uint8) + \
        rng.integers(0, 3, size=(120, 1, 8, 8), dtype=np.uint8)
    names = ("dark", "light")
    train = LabelledImages(images[::2], labels[::2], names, "dark or light, train")
    test = LabelledImages(images[1::2], labels[1::2], names, "dark or light, test")
    result = run(train, test, train, tmp_path)
    assert result.arms[0].accuracy.mean == 1.0
    synthetic = next(arm for arm in result.arms if arm.name == "synthetic")
    said = cannot_tell(result, synthetic, "real")
    assert said is not None and said.startswith("too little headroom to tell: real scores 100.0%")
    assert "test images would show a" in said
    assert any(said in line for line in verdict_lines(result))
    assert "| cannot tell |" in markdown(result)
    assert bottom_line(result).startswith("These measurements cannot tell: every synthetic arm against classical is "
                                          "too little headroom to tell")


def test_neither_limit_is_said_of_the_readme_job_s_recorded_report_nor_of_real_looking_images(digits, tmp_path):
    recorded = read_report(Path(__file__).parent / "data" / "report-before-arms.json")  # the README job, as written
    assert failed_images(recorded) is None
    assert not any(cannot_tell(recorded, arm, to) for arm in recorded.arms for to in ("real", "classical"))
    assert "fail as images" not in markdown(recorded) and "cannot tell" not in markdown(recorded)
    assert bottom_line(recorded).startswith("No evidence that they help: no synthetic arm beat real")
    train, test = digits
    shifted = LabelledImages(np.roll(test.images, 1, axis=3), test.labels, test.class_names, "shifted test")
    assert failed_images(run(train, test, shifted, tmp_path)) is None


def test_neither_limit_is_said_of_the_shipped_mnist_job_s_report():
    """jobs/mnist-scarce-variants.toml's report as it ran: arms 1-2 points apart near 95%, intervals under a point."""
    recorded = read_report(Path(__file__).parent / "data" / "report-mnist-scarce-variants.json")
    assert failed_images(recorded) is None
    assert not any(cannot_tell(recorded, arm, to) for arm in recorded.arms for to in ("real", "classical"))
    assert "fail as images" not in markdown(recorded) and "cannot tell" not in markdown(recorded)
    assert bottom_line(recorded).startswith("Use them as the classical+variants arm does")


def test_images_to_see_gain_grows_as_the_gain_shrinks_and_the_score_leaves_the_ends():
    assert images_to_see_gain(0.9, 1.0) == pytest.approx(2 * 1.96**2 * 0.09 / 0.01**2, rel=1e-3)
    assert images_to_see_gain(0.9, 0.5) > images_to_see_gain(0.9, 1.0) > images_to_see_gain(0.99, 1.0)
