"""Classifier runs side by side (gen_aug/evaluation/parallel.py, arms.run_plans): the same figures whatever the number of
runs at once, one bar over every run, and the thread count recorded.

Guards: gen_aug/evaluation/parallel.py, gen_aug/evaluation/arms.py
"""

import dataclasses

import numpy as np
import pytest
import torch

from gen_aug.data import LabelledImages, load_data
from gen_aug.classifiers.classifier import ClassifierConfig
from gen_aug.evaluation.measure import evaluate_images
from gen_aug.evaluation.options import EvaluationOptions
from gen_aug.evaluation.parallel import MIN_STEPS_TO_SPREAD, THREADS_PER_RUN, jobs_for, run_all, usable_cpus

FAST = ClassifierConfig(width=4, feature_dim=16, steps=40, batch_size=64)
ARMS = ("real", "classical", "synthetic", "distill")


@pytest.fixture(scope="module")
def sets():
    train, test = load_data("builtin:digits"), load_data("builtin:digits?split=test")
    shifted = LabelledImages(np.roll(test.images, 1, axis=3), test.labels, test.class_names, "shifted test")
    return train, test, shifted


def evaluated(sets, cache, jobs, progress=False):
    train, test, synthetic = sets
    options = EvaluationOptions(seeds=(0, 1), arms=ARMS, sample_size=300, jobs=jobs)
    return evaluate_images(train, test, synthetic, options, config=FAST, cache_dir=cache, progress=progress)


def test_two_runs_at_once_give_the_figures_of_one_at_a_time(sets, tmp_path, capfd):
    alone = evaluated(sets, tmp_path, jobs=1)
    side_by_side = evaluated(sets, tmp_path, jobs=2, progress=True)
    assert [arm.accuracy.per_seed for arm in side_by_side.arms] == [arm.accuracy.per_seed for arm in alone.arms]
    assert side_by_side.tstr == alone.tstr and side_by_side.arms == alone.arms  # every metric, per class, paired
    assert alone.settings.threads_per_run == THREADS_PER_RUN
    shown = capfd.readouterr().err.replace("\r", "\n").splitlines()
    # tstr, real, classical, synthetic (the teacher first), then distill: 10 runs on one bar, the teachers' first
    finals = [line for line in shown if line.startswith("evaluate: 100%")]
    assert any(" 10/10 " in line for line in finals), finals[-3:]
    assert not any("/8 " in line or "/2 " in line for line in shown), shown[-3:]  # no bar of one phase alone


def test_runs_at_once_default_to_the_usable_cpus_and_to_one_on_a_gpu_or_for_short_runs():
    assert jobs_for(3, "cpu", 10) == 3 and jobs_for(None, "cuda", 10**6) == 1
    assert jobs_for(None, "cpu", MIN_STEPS_TO_SPREAD) == usable_cpus() >= 1
    assert jobs_for(None, "cpu", MIN_STEPS_TO_SPREAD - 1) == 1  # starting processes would cost more than it saves


def test_every_run_here_uses_the_fixed_thread_count_and_the_caller_keeps_its_own():
    before = torch.get_num_threads()
    seen = run_all(_threads, [0, 1, 2], ["a", "b", "c"], jobs=1, progress=False)
    assert seen == [THREADS_PER_RUN] * 3 and torch.get_num_threads() == before
    assert run_all(_threads, [0, 1], ["a", "b"], jobs=2, progress=False) == [THREADS_PER_RUN] * 2


def test_a_failing_run_fails_the_evaluation_with_its_own_error():
    with pytest.raises(ValueError, match="run 1 failed"):
        run_all(_fail_on_one, [0, 1, 2], ["a", "b", "c"], jobs=2, progress=False)


def _threads(task):
    return torch.get_num_threads()


def _fail_on_one(task):
    if task == 1:
        raise ValueError("run 1 failed")
    return task


def test_jobs_is_an_option_checked_like_the_others():
    with pytest.raises(Exception, match=r"jobs = 0 \(expected 1 or more\)"):
        EvaluationOptions(jobs=0)
    assert dataclasses.replace(EvaluationOptions(), jobs=2).jobs == 2
