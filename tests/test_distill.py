"""The distill arm: synthetic images labelled by the same seed's classical classifier, real images by their class.

Guards: gen_aug/evaluation/distill.py, gen_aug/evaluation/arms.py, gen_aug/evaluation/options.py
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gen_aug.data import LabelledImages, load_data
from gen_aug.errors import GenaugError
from gen_aug.evaluation.arms import plan_arms, run_arm, run_arms
from gen_aug.classifiers.classifier import ClassifierConfig, train_classifier
from gen_aug.evaluation.distill import TeacherLabels
from gen_aug.evaluation.options import EvaluationOptions
from gen_aug.evaluation.wording import verdict_lines

FAST = ClassifierConfig(width=4, feature_dim=16, steps=20, batch_size=32)


@pytest.fixture(scope="module")
def digits():
    train = load_data("builtin:digits?limit_per_class=8")
    test = load_data("builtin:digits?split=test&limit_per_class=10")
    # Stand-ins for synthetic images: other real digits moved by a pixel, labelled as they are.
    synthetic = LabelledImages(np.roll(test.images, 1, axis=3), test.labels, test.class_names, "shifted test")
    return train, test, synthetic


def test_teacher_labels_keep_real_classes_and_take_the_teachers_probabilities_for_synthetic_rows(digits):
    train, _, synthetic = digits
    teacher = train_classifier(train.images, train.labels, 10, FAST, seed=3, device="cpu")
    mixed = LabelledImages(np.concatenate([train.images, synthetic.images]),
                           np.concatenate([train.labels, synthetic.labels]), train.class_names, "mixed")
    labels = TeacherLabels.of(mixed, len(train.images), teacher)
    targets = labels.targets.numpy()
    assert targets.shape == (len(mixed.images), 10) and targets.dtype == np.float32
    assert np.allclose(targets.sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(targets[: len(train.images)], np.eye(10, dtype=np.float32)[train.labels])
    assert np.allclose(targets[len(train.images):], teacher.predict_proba(synthetic.images), atol=1e-6)
    assert not np.allclose(targets[len(train.images):], np.eye(10)[synthetic.labels])  # soft, not the drawn class
    index = torch.tensor([0, len(train.images) + 4, 2])
    batch = torch.from_numpy(mixed.images[index.numpy()])
    out, soft = labels.swap(index, batch, torch.from_numpy(mixed.labels[index.numpy()]), torch.Generator())
    assert out is batch and torch.equal(soft, labels.targets[index])
    with pytest.raises(GenaugError, match=r"^distill: a teacher of 10 classes for rows 999 on of"):
        TeacherLabels.of(mixed, 999, teacher)


def test_each_seed_of_the_classical_arm_is_kept_to_teach_that_seed(digits):
    train, test, synthetic = digits
    options = EvaluationOptions(arms=("real", "classical", "distill"), seeds=(0, 2))
    plans, mixing = plan_arms(options.arms, train, synthetic, options)
    classical, distill = plans[1], plans[2]
    assert distill.teacher == "classical" and distill.classical
    assert distill.synthetic_from == len(train.images) == len(distill.train.images) - mixing.synthetic_images_added
    kept = {}
    run_arm(classical, test, FAST, options, "cpu", progress=False, keep=kept)
    assert sorted(kept) == [0, 2] and [kept[seed].seed for seed in (0, 2)] == [0, 2]
    summary = run_arm(distill, test, FAST, options, "cpu", progress=False, teachers=kept)
    assert len(summary.accuracy.per_seed) == 2
    other = {0: kept[2], 2: kept[0]}  # the teachers swapped: the students learn other targets
    swapped = run_arm(distill, test, FAST, options, "cpu", progress=False, teachers=other)
    assert swapped.accuracy.per_seed != summary.accuracy.per_seed or swapped.auc.per_seed != summary.auc.per_seed


def test_the_distill_arm_runs_after_its_teacher_and_is_paired_with_real_and_classical(digits):
    train, test, synthetic = digits
    options = EvaluationOptions(arms=("real", "distill", "classical"), seeds=(0, 1))  # the teacher named last
    tstr, mixing, arms = run_arms(train, synthetic, test, options, FAST, device="cpu", progress=False)
    assert [arm.name for arm in arms] == ["real", "distill", "classical"]  # reported in the order asked
    distill = arms[1]
    assert distill.train_images == len(train.images) + mixing.synthetic_images_added
    assert "labelled by the same seed's classical classifier's probabilities" in distill.training
    assert "TrivialAugmentWide" in distill.training
    assert {d.to for d in distill.differences} == {"real", "classical"}
    images = SimpleNamespace(precision_recall=SimpleNamespace(precision=0.9), class_consistency=SimpleNamespace(
        overall=0.9), class_names=train.class_names)  # synthetic images that pass as images
    result = SimpleNamespace(arms=arms, settings=options, prior=None, **vars(images))  # what verdict_lines reads
    assert any(line.startswith("distill vs real: ") for line in verdict_lines(result))


def test_distill_without_its_teacher_is_refused():
    with pytest.raises(GenaugError, match=r"^arms = \['real', 'distill'\] \(expected 'classical' among them"):
        EvaluationOptions(arms=("real", "distill"))
