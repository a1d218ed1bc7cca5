"""Scores agree with scikit-learn on fixed predictions; paired intervals agree with scipy and with the formula.

Guards: gen_aug/evaluation/scores.py, gen_aug/evaluation/statistics.py
"""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import balanced_accuracy_score, f1_score, recall_score, roc_auc_score

from gen_aug.evaluation.scores import per_class_recall, scores
from gen_aug.evaluation.statistics import HELPS, HURTS, NO_EFFECT, NOT_AVAILABLE, mean_interval, paired_difference


def fixed_probabilities(num_classes: int, count: int = 200, seed: int = 0):
    """Class probabilities that are right more often than chance, and the true labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, count)
    logits = rng.normal(size=(count, num_classes)) + 1.5 * np.eye(num_classes)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probabilities, labels


@pytest.mark.parametrize("num_classes", [2, 5])
def test_scores_agree_with_scikit_learn(num_classes):
    probabilities, labels = fixed_probabilities(num_classes)
    predicted = probabilities.argmax(axis=1)
    found = scores(probabilities, labels)
    assert found["accuracy"] == pytest.approx((predicted == labels).mean())
    assert found["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, predicted))
    assert found["balanced_accuracy"] == pytest.approx(np.mean(recall_score(labels, predicted, average=None)))
    assert found["macro_f1"] == pytest.approx(f1_score(labels, predicted, average="macro"))
    expected_auc = (roc_auc_score(labels, probabilities[:, 1]) if num_classes == 2
                    else roc_auc_score(labels, probabilities, multi_class="ovr"))
    assert found["auc"] == pytest.approx(expected_auc)
    # One-vs-rest by hand: the mean over classes of the AUC of "this class" against the others (binary: class 1).
    classes = range(num_classes) if num_classes > 2 else [1]
    by_hand = np.mean([roc_auc_score(labels == c, probabilities[:, c]) for c in classes])
    assert found["auc"] == pytest.approx(by_hand)
    assert 0.5 < found["auc"] <= 1 and found["balanced_accuracy"] != found["accuracy"]


def test_a_class_without_test_images_has_no_auc_or_recall():
    probabilities, labels = fixed_probabilities(3)
    keep = labels != 2
    found = scores(probabilities[keep], labels[keep])
    assert found["auc"] is None and found["accuracy"] is not None
    recalls = per_class_recall(probabilities[keep].argmax(axis=1), labels[keep], 3)
    assert recalls[2] is None and recalls[0] == pytest.approx(recall_score(labels[keep], probabilities[keep].argmax(1),
                                                                           labels=[0], average=None)[0])


def test_paired_interval_matches_scipy_and_the_t_formula():
    arm = [0.91, 0.93, 0.90, 0.94, 0.92]
    real = [0.90, 0.90, 0.89, 0.91, 0.91]
    found = paired_difference(arm, real, to="real", metric="accuracy")
    differences = 100 * (np.array(arm) - np.array(real))
    low, high = stats.ttest_rel(differences, np.zeros(5)).confidence_interval(0.95)
    assert (found.low_points, found.high_points) == (pytest.approx(low), pytest.approx(high))
    half = 2.7764451051977987 * differences.std(ddof=1) / np.sqrt(5)  # t(0.975, 4 degrees of freedom)
    assert found.mean_points == pytest.approx(differences.mean()) == pytest.approx(1.8)
    assert found.high_points - found.mean_points == pytest.approx(half)
    assert found.verdict == HELPS and found.to == "real" and found.metric == "accuracy"


def test_the_verdict_comes_from_the_interval_never_from_the_mean_alone():
    real = [0.90, 0.91, 0.92]
    assert paired_difference([0.89, 0.90, 0.91], real, to="real", metric="accuracy").verdict == HURTS
    noisy = paired_difference([0.95, 0.88, 0.93], real, to="real", metric="accuracy")
    assert noisy.mean_points > 0 and noisy.verdict == NO_EFFECT  # a positive mean, an interval across 0
    one = paired_difference([0.95], [0.90], to="real", metric="accuracy")
    assert one.mean_points == pytest.approx(5) and one.low_points is None and one.verdict == NOT_AVAILABLE
    undefined = paired_difference([None, 0.8, 0.9], [0.7, 0.7, 0.8], to="real", metric="auc")
    assert undefined.mean_points == pytest.approx(10)  # the seed without a value is left out
    assert paired_difference([None], [None], to="real", metric="auc").mean_points is None
    assert mean_interval([0.5]) is None
