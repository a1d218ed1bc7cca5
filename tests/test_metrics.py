"""Metrics on tiny real data: sanity of each (real vs real, noise, a set against itself) and determinism.

Guards: gen_aug/evaluation/metrics.py, gen_aug/evaluation/mixing.py, gen_aug/evaluation/measure.py,
    gen_aug/evaluation/result.py, gen_aug/evaluation/arms.py
"""

import json

import numpy as np
import pytest
import scipy.linalg

from gen_aug.classifiers.classifier import ClassifierConfig, reference_classifier
from gen_aug.data import LabelledImages, load_data
from gen_aug.errors import GenaugError
from gen_aug.evaluation.arms import ArmPlan, run_arm, tstr_plan
from gen_aug.evaluation.measure import evaluate_images
from gen_aug.evaluation.mixing import mix_real_synthetic, real_repeats
from gen_aug.evaluation.metrics import (
    class_consistency,
    frechet_distance,
    frechet_per_class,
    precision_recall,
    sample_indices,
)
from gen_aug.evaluation.options import EvaluationOptions
from gen_aug.evaluation.result import ClassConsistency, EvaluationResult, PrecisionRecall

TINY = ClassifierConfig(width=8, feature_dim=32, steps=200, batch_size=64)
FAST = ClassifierConfig(width=4, feature_dim=16, steps=30, batch_size=64)


@pytest.fixture(scope="module")
def digits():
    return load_data("builtin:digits"), load_data("builtin:digits?split=test")


@pytest.fixture(scope="module")
def judge(digits, tmp_path_factory):
    return reference_classifier(digits[0], TINY, cache_dir=tmp_path_factory.mktemp("cache"))


def uniform_noise(like: LabelledImages, seed: int = 0) -> LabelledImages:
    pixels = np.random.default_rng(seed).integers(0, 256, like.images.shape, dtype=np.uint8)
    return LabelledImages(pixels, like.labels, like.class_names, "uniform noise")


def test_frechet_matches_the_scipy_sqrtm_formula_and_known_cases():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(500, 6)), rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)) + 1.5
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-9)
    assert frechet_distance(a, a + np.array([3.0, 4, 0, 0, 0, 0])) == pytest.approx(25, rel=1e-9)


def test_frechet_of_fewer_images_than_dimensions_is_finite_and_classes_without_images_are_none():
    rng = np.random.default_rng(1)
    few, other = rng.normal(size=(5, 32)), rng.normal(size=(7, 32)) + 1
    assert np.isfinite(frechet_distance(few, other)) and frechet_distance(few, other) > frechet_distance(few, few)
    per_class = frechet_per_class(other, np.array([0, 0, 0, 1, 1, 1, 1]), few, np.array([0, 0, 1, 1, 2]), 3)
    assert per_class[0] is not None and per_class[1] is not None and per_class[2] is None
    with pytest.raises(GenaugError, match=r"1 and 7 feature vectors \(expected 2 or more each\)"):
        frechet_distance(few[:1], other)


def test_real_vs_real_distance_is_near_zero_and_far_below_real_vs_noise(digits, judge):
    train, test = digits
    real_train, real_test = judge.embed(train.images), judge.embed(test.images)
    noise = judge.embed(uniform_noise(test).images)
    real_vs_real, real_vs_noise = frechet_distance(real_test, real_train), frechet_distance(real_test, noise)
    assert real_vs_real < 0.05 * real_vs_noise
    assert frechet_distance(real_test, real_test) == pytest.approx(0, abs=1e-6)


def test_class_consistency_is_high_for_real_images_and_low_for_noise(digits, judge):
    _, test = digits
    real = class_consistency(judge.predict(test.images), test.labels, 10)
    noise = class_consistency(judge.predict(uniform_noise(test).images), test.labels, 10)
    assert real.overall > 0.9 and min(real.per_class) > 0.7
    assert noise.overall < 0.3 and len(noise.per_class) == 10
    assert class_consistency(np.array([0, 1, 1]), np.array([0, 1, 0]), 3) == ClassConsistency(
        overall=pytest.approx(2 / 3),
        per_class=(0.5, 1.0, None),
    )


def test_precision_recall_of_a_set_against_itself_is_one_and_of_far_sets_zero():
    points = np.random.default_rng(2).normal(size=(300, 8))
    assert precision_recall(points, points) == PrecisionRecall(precision=1.0, recall=1.0, k=3)
    far = precision_recall(points, points + 100)
    assert far.precision == 0 and far.recall == 0
    # Synthetic points all collapsed onto one real region: precise, but they miss most of the real set.
    collapsed = precision_recall(points, points[:10] * 0.01 + points[0])
    assert collapsed.precision == 1.0 and collapsed.recall < 0.2
    with pytest.raises(GenaugError, match="k=3 of 3 real"):
        precision_recall(points[:3], points)


def test_sample_indices_are_fixed_by_seed_and_cover_small_sets():
    assert np.array_equal(sample_indices(10, 20, 0), np.arange(10))
    picked = sample_indices(1000, 50, 7)
    assert len(np.unique(picked)) == 50 and np.array_equal(picked, np.sort(picked))
    assert np.array_equal(picked, sample_indices(1000, 50, 7))
    assert not np.array_equal(picked, sample_indices(1000, 50, 8))


def test_mix_adds_ratio_synthetic_per_real_image_in_each_class(digits):
    train, test = digits
    mixed = mix_real_synthetic(train, test, 0.2, seed=0)
    added = mixed.class_counts() - train.class_counts()
    assert added.tolist() == [round(0.2 * c) for c in train.class_counts()]
    assert np.array_equal(mixed.images[: len(train.images)], train.images)
    assert np.array_equal(mixed.images, mix_real_synthetic(train, test, 0.2, seed=0).images)
    everything = mix_real_synthetic(train, test, 5.0)  # asks for more than there is: takes all
    assert np.array_equal(everything.class_counts(), train.class_counts() + test.class_counts())
    assert len(mix_real_synthetic(train, test, 0).images) == len(train.images)


def test_a_real_share_repeats_the_real_images_to_about_that_share(digits):
    train, test = digits
    mixed = mix_real_synthetic(train, test, 0.2, seed=0, real_share=0.5)
    plain = mix_real_synthetic(train, test, 0.2, seed=0)
    synthetic_count = len(plain.images) - len(train.images)
    assert real_repeats(len(train.images), synthetic_count, 0.5) == 1  # 0.2 synthetic per real: once is nearest
    many = mix_real_synthetic(train, test, 0.2, seed=0, real_share=0.9)
    assert real_repeats(len(train.images), synthetic_count, 0.9) == 2
    assert len(many.images) == 2 * len(train.images) + synthetic_count
    assert np.array_equal(many.images[len(train.images) : 2 * len(train.images)], train.images)
    assert np.array_equal(many.images[2 * len(train.images) :], plain.images[len(train.images) :])
    assert " x2 + " in many.description and np.array_equal(mixed.images, plain.images)
    assert real_repeats(20, 1000, 1 / 3) == 25 and real_repeats(20, 0, 0.5) == 1
    with pytest.raises(GenaugError, match=r"real share 1.0 \(expected a fraction between 0 and 1"):
        mix_real_synthetic(train, test, 1.0, real_share=1.0)


def test_incompatible_synthetic_sets_and_bad_ratios_are_one_line_errors(digits):
    train, test = digits
    renamed = LabelledImages(test.images, test.labels, tuple("abcdefghij"), "renamed")
    with pytest.raises(GenaugError, match=r"classes a, b, .* \(expected the real data's classes 0, 1"):
        mix_real_synthetic(train, renamed, 1.0)
    bigger = load_data("builtin:digits?split=test&resolution=16")
    with pytest.raises(GenaugError, match=r"images of 1x16x16 \(expected the real data's 1x8x8"):
        evaluate_images(train, test, bigger, EvaluationOptions(seeds=(0,)), config=FAST)
    with pytest.raises(GenaugError, match=r"mixing ratio -1"):
        mix_real_synthetic(train, test, -1)


def test_tstr_on_real_images_as_synthetic_equals_the_real_arm(digits):
    train, test = digits
    as_synthetic = LabelledImages(train.images, train.labels, train.class_names, "real train as synthetic")
    options = EvaluationOptions(seeds=(0, 1))
    synthetic_score = run_arm(tstr_plan(as_synthetic), test, TINY, options, progress=False)
    real_score = run_arm(ArmPlan("real", train, "real train"), test, TINY, options, progress=False)
    assert synthetic_score.accuracy == real_score.accuracy and synthetic_score.auc == real_score.auc
    assert synthetic_score.accuracy.mean > 0.9 and len(synthetic_score.accuracy.per_seed) == 2
    assert synthetic_score.accuracy.std == pytest.approx(np.std(synthetic_score.accuracy.per_seed, ddof=1))


def test_evaluate_images_is_deterministic_and_json_ready(digits, tmp_path):
    train, test = digits
    noise = uniform_noise(test, seed=3)
    options = EvaluationOptions(seeds=(0, 1), mix_ratio=0.5, sample_size=200)
    run = dict(config=FAST, cache_dir=tmp_path, progress=False)
    result = evaluate_images(train, test, noise, options, **run)
    assert json.loads(json.dumps(result.to_dict())) == result.to_dict()
    assert EvaluationResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    assert evaluate_images(train, test, noise, options, **run) == result
    assert result.data.synthetic.images == len(noise.images)
    wanted = [min(round(0.5 * real), have) for real, have in zip(train.class_counts(), noise.class_counts())]
    assert result.mixing.synthetic_images_added == sum(wanted)
    assert result.mixing.synthetic_per_class == tuple(wanted)
    assert result.frechet_distance.overall > 10 * result.frechet_distance.real_train_vs_test
    assert result.precision_recall.precision < result.precision_recall.real_train_vs_test.precision
    assert len(result.frechet_distance.per_class) == 10 and result.settings.sample_size == 200
    assert [arm.name for arm in result.arms] == list(options.arms)
    synthetic, real = result.arm("synthetic"), result.arm("real")
    assert synthetic.difference("real", "accuracy").mean_points == pytest.approx(
        100 * (synthetic.accuracy.mean - real.accuracy.mean)
    )
    assert result.prior.distance < 0.01 and not result.prior.shifted
    assert result.prior.points_per_test_image == pytest.approx(100 / len(test.images))
    assert result.memorisation.pixels.share_below < 0.05  # uniform noise is far from every digit
