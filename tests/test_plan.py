"""The synthesis plan: counts, class splits, labels and shards, all pure and deterministic.

Guards: gen_aug/output/plan.py
"""

import math

import numpy as np
import pytest

from gen_aug.errors import GenaugError
from gen_aug.output.plan import Plan, make_plan, parse_count

NAMES = ("cat", "dog", "owl")


@pytest.mark.parametrize("text", ["1e6", "1000000", "1_000_000", "1E6", " 1000000 ", "1.0e6"])
def test_count_forms(text):
    assert parse_count(text) == 1_000_000


@pytest.mark.parametrize(
    "text, why", [("0", "out of range"), ("-5", "out of range"), ("1.5", "not a whole number"),
                  ("abc", "not a number"), ("", "not a number"), ("2e9", "out of range"), ("1__0", "not a number"),
                  ("1e400", "out of range")],
)
def test_bad_counts_are_one_line_errors(text, why):
    with pytest.raises(GenaugError, match=why) as error:
        parse_count(text)
    assert "\n" not in str(error.value) and str(error.value).startswith(f"--n {text!r}")


def test_uniform_split_gives_the_remainder_to_the_first_classes():
    assert make_plan(NAMES, n=10).class_counts == (4, 3, 3)
    assert make_plan(NAMES, n=11).class_counts == (4, 4, 3)
    assert make_plan(NAMES, n=11, classes="owl,cat").class_counts == (6, 0, 5)


def test_labels_have_exact_counts_and_any_range_split_agrees():
    plan = make_plan(tuple(str(c) for c in range(10)), n=10_007, shard_size=1000, seed=3)
    whole = plan.labels(0, plan.n)
    assert np.bincount(whole, minlength=10).tolist() == list(plan.class_counts)
    pieces = np.concatenate([plan.labels(s.start, s.stop) for s in plan.shards()])
    assert np.array_equal(pieces, whole)
    assert np.array_equal(plan.labels(4321, 4400), whole[4321:4400])
    # Each shard holds close to the job's class mix, so any shard is a fair sample.
    for shard in plan.shards()[:-1]:
        assert np.abs(np.bincount(plan.labels(shard.start, shard.stop), minlength=10) - 100).max() <= 5


def test_shards_are_contiguous_and_cover_the_job():
    plan = make_plan(NAMES, n=1001, shard_size=100)
    shards = plan.shards()
    assert len(shards) == plan.num_shards == 11
    assert [s.start for s in shards] == list(range(0, 1001, 100))
    assert shards[-1].stop == 1001 and shards[-1].rows == 1
    assert all(a.stop == b.start for a, b in zip(shards, shards[1:]))


def test_plan_is_a_pure_function_and_round_trips():
    a = make_plan(NAMES, n=999, class_weights="cat=2,owl=1", shard_size=64, seed=9)
    b = make_plan(NAMES, n=999, class_weights="cat=2,owl=1", shard_size=64, seed=9)
    assert a == b and np.array_equal(a.labels(0, a.n), b.labels(0, b.n))
    assert Plan.from_dict(a.to_dict()) == a
    assert math.gcd(a.label_stride, a.n) == 1


def test_per_class_counts():
    assert make_plan(NAMES, per_class="5").class_counts == (5, 5, 5)
    assert make_plan(NAMES, per_class="1e2", classes="dog").class_counts == (0, 100, 0)
    assert make_plan(NAMES, per_class="cat=5,2=1").class_counts == (5, 0, 1)
    assert make_plan(NAMES, n=15, per_class="5").n == 15
    with pytest.raises(GenaugError, match="disagree"):
        make_plan(NAMES, n=10, per_class="5")


def test_explicit_weights_by_name_or_index():
    assert make_plan(NAMES, n=8, class_weights="0=3,dog=1").class_counts == (6, 2, 0)
    assert make_plan(NAMES, n=7, class_weights="cat=1,dog=1,owl=1").class_counts == (3, 2, 2)


def test_balance_tops_up_small_classes():
    real = [50, 10, 30]
    plan = make_plan(NAMES, n=100, class_weights="balance", real_counts=real)
    assert plan.n == 100
    total = np.array(real) + np.array(plan.class_counts)
    assert total.max() - total.min() <= 1
    # Not enough to reach the largest class: only the small ones get images.
    assert make_plan(NAMES, n=20, class_weights="balance", real_counts=real).class_counts == (0, 20, 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 10, "per_class": "bat=3"}, "--per-class: unknown class 'bat'"),
        ({"n": 10, "class_weights": "cat=1,bat=2"}, "--class-weights: unknown class 'bat'"),
        ({"n": 10, "classes": "cat,7"}, "--classes: unknown class '7'"),
        ({"n": 10, "class_weights": "cat=-1"}, "expected a number >= 0"),
        ({"n": 10, "class_weights": "cat=0"}, "all weights are 0"),
        ({"n": 10, "class_weights": "cat"}, "is not CLASS=VALUE"),
        ({"n": 10, "class_weights": "cat=1,cat=2"}, "given twice"),
        ({"n": 10, "class_weights": "balance"}, "expected --data SPEC"),
        ({"n": 10, "classes": "cat", "class_weights": "dog=1"}, "not among --classes"),
        ({"per_class": "2", "class_weights": "cat=1"}, "both given"),
        ({}, "--n: missing"),
        ({"per_class": "cat=0"}, "0 images in all"),
    ],
)
def test_bad_class_options(kwargs, message):
    with pytest.raises(GenaugError, match=message.replace("(", r"\(")):
        make_plan(NAMES, **kwargs)
