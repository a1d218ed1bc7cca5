"""The variants arms: real images swapped for their own variants with probability p, class shares and pairing kept.

Guards: gen_aug/evaluation/swap.py, gen_aug/evaluation/arms.py, gen_aug/evaluation/evaluate.py
"""

import dataclasses
import json

import numpy as np
import pytest
import torch

from gen_aug.data import LabelledImages, load_data
from gen_aug.errors import GenaugError
from gen_aug.evaluation.arms import plan_arms, run_arm, sampled_shares
from gen_aug.classifiers.classifier import ClassifierConfig, train_classifier
from gen_aug.evaluation.evaluate import evaluate
from gen_aug.evaluation.options import EvaluationOptions
from gen_aug.evaluation.swap import VariantPool, VariantProvenance, soft_labels
from gen_aug.evaluation.wording import verdict_lines
from gen_aug.synthesis.driver import synthesize
from gen_aug.synthesis.options import SynthesisOptions
from gen_aug.output.reader import SyntheticImages, load_synthetic

REAL = 50  # real images 0..49; image i has i % 3 + 1 variants, except image 7, which has none


@pytest.fixture(scope="module")
def pool_parts():
    sources = np.array([i for i in range(REAL) if i != 7 for _ in range(i % 3 + 1)])
    images = np.zeros((len(sources), 1, 4, 4), np.uint8)
    images[:, 0, 0, 0] = sources  # pixel (0, 0) says which source, pixel (0, 1) which of its variants
    images[:, 0, 0, 1] = np.concatenate([np.arange(np.sum(sources == s)) for s in np.unique(sources)])
    images[:, 0, 1, 1] = 255  # no real image has it
    variants = LabelledImages(images, sources % 2, ("a", "b"), "variants")
    order = np.random.default_rng(0).permutation(len(sources))  # the pool finds variants in any row order
    return dataclasses.replace(variants, images=images[order], labels=(sources % 2)[order]), sources[order]


def real_batch(index: torch.Tensor) -> torch.Tensor:
    batch = torch.zeros((len(index), 1, 4, 4), dtype=torch.uint8)
    batch[:, 0, 0, 0] = index.to(torch.uint8)
    return batch


def draw(pool: VariantPool, draws: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.arange(draws) % REAL
    batch, targets = pool.swap(index, real_batch(index), index % 2, torch.Generator().manual_seed(seed))
    assert pool.targets is not None or torch.equal(targets, index % 2)  # hard labels stay the real ones
    return index, batch


def test_each_swapped_image_is_a_variant_of_the_drawn_one_at_the_given_rate(pool_parts):
    pool = VariantPool.of(*pool_parts, real_count=REAL, probability=0.5)
    index, batch = draw(pool, 20_000)
    swapped = batch[:, 0, 1, 1] == 255
    assert (batch[:, 0, 0, 0] == index.to(torch.uint8)).all()  # always the drawn image's own variant, or itself
    assert not swapped[index == 7].any()  # an image without variants stays real
    rate = swapped[index != 7].float().mean().item()
    assert abs(rate - 0.5) < 0.02, rate  # 19,600 draws: 0.02 is over 5 standard deviations
    for source in (1, 2, 5):  # 2, 3 and 3 variants: each picked about equally often
        picks = torch.bincount(batch[swapped & (index == source), 0, 0, 1].long(), minlength=source % 3 + 1)
        assert len(picks) == source % 3 + 1 and picks.min() > 0.6 * picks.float().mean(), picks
    assert torch.equal(draw(pool, 20_000)[1], batch)  # the same generator seed, the same swaps


@pytest.mark.parametrize("probability, expected", [(0.0, False), (1.0, True)])
def test_probability_0_never_swaps_and_1_always_does(pool_parts, probability, expected):
    index, batch = draw(VariantPool.of(*pool_parts, real_count=REAL, probability=probability), 500)
    swapped = batch[:, 0, 1, 1] == 255
    assert (swapped[index != 7] == expected).all() and not swapped[index == 7].any()


def test_variants_from_outside_the_real_split_are_refused(pool_parts):
    with pytest.raises(GenaugError, match="source indices outside the real train split's 0 to 9"):
        VariantPool.of(*pool_parts, real_count=10, probability=0.5)


def test_the_swap_arm_trains_on_the_real_labels_and_at_p_0_is_the_real_arm(pool_parts):
    rng = np.random.default_rng(3)
    real = LabelledImages(rng.integers(0, 256, (REAL, 1, 4, 4), dtype=np.uint8), np.arange(REAL) % 2, ("a", "b"),
                          "real")
    options = EvaluationOptions(arms=("real", "variants"), seeds=(0,), steps=4, swap_probability=0.0)
    (real_plan, swap_plan), _ = plan_arms(options.arms, real, pool_parts[0], options, provenance(pool_parts[1]))
    assert swap_plan.train is real and swap_plan.swap is not None and "0 to 3 variants with probability 0" in \
        swap_plan.training
    config = ClassifierConfig(steps=4, batch_size=16)
    summaries = [run_arm(plan, real, config, options, progress=False) for plan in (real_plan, swap_plan)]
    assert summaries[1].sampled_shares == sampled_shares(real.class_counts(), False) == summaries[0].sampled_shares
    assert summaries[1].accuracy.per_seed == summaries[0].accuracy.per_seed
    common = dict(seed=0, device="cpu")
    plain = train_classifier(real.images, real.labels, 2, config, **common)
    never = train_classifier(real.images, real.labels, 2, config, swap=swap_plan.swap.swap, **common)
    always = train_classifier(real.images, real.labels, 2, config,
                              swap=dataclasses.replace(swap_plan.swap, probability=1.0).swap, **common)
    assert np.array_equal(plain.predict_proba(real.images), never.predict_proba(real.images))
    assert not np.array_equal(plain.predict_proba(real.images), always.predict_proba(real.images))


def provenance(source_index: np.ndarray, mix_classes: bool = False) -> VariantProvenance:
    return VariantProvenance(source_index, source_index % 2, np.full(len(source_index), 0.5), mix_classes)


def test_soft_labels_put_s_to_the_gamma_on_the_rendered_class_and_sum_to_1():
    targets = soft_labels(np.array([0, 1, 2, 1]), np.array([1, 0, 0, 1]), np.array([0.25, 0.5, 1.0, 0.5]), 0.5, 3)
    assert np.allclose(targets.sum(axis=1), 1)
    assert np.allclose(targets[0], [0.5, 0.5, 0]) and np.allclose(targets[1], [0.5 ** 0.5, 1 - 0.5 ** 0.5, 0])
    assert np.allclose(targets[2], [1, 0, 0]) and np.allclose(targets[3], [0, 1, 0])  # strength 1: all the new class


def test_a_soft_pool_gives_swapped_rows_their_soft_label_and_the_rest_one_hot(pool_parts):
    variants, sources = pool_parts
    rendered = 1 - variants.labels  # rendered under the other class
    targets = soft_labels(sources % 2, rendered, np.full(len(sources), 0.25), 1.0, 2)
    pool = VariantPool.of(variants, sources, REAL, 0.5, targets)
    index = torch.arange(2000) % REAL
    batch, labels = pool.swap(index, real_batch(index), index % 2, torch.Generator().manual_seed(0))
    swapped = batch[:, 0, 1, 1] == 255
    assert labels.shape == (2000, 2) and torch.allclose(labels.sum(dim=1), torch.ones(2000))
    own = torch.nn.functional.one_hot(index % 2, 2).float()
    assert torch.equal(labels[~swapped], own[~swapped])
    assert torch.allclose(labels[swapped], 0.75 * own[swapped] + 0.25 * (1 - own[swapped]))
    config = ClassifierConfig(steps=3, batch_size=16)
    real = LabelledImages(np.zeros((REAL, 1, 4, 4), np.uint8), np.arange(REAL) % 2, ("a", "b"), "real")
    trained = train_classifier(real.images, real.labels, 2, config, seed=0, device="cpu", swap=pool.swap)
    assert trained.predict_proba(real.images).shape == (REAL, 2)  # the soft cross-entropy trains


def test_the_variants_arm_needs_a_variant_output():
    real = LabelledImages(np.zeros((4, 1, 4, 4), np.uint8), np.array([0, 1, 0, 1]), ("a", "b"), "real")
    options = EvaluationOptions(arms=("real", "variants"), seeds=(0,))
    with pytest.raises(GenaugError, match=r"^--arms real,variants: the variants arms need variants of the real train"):
        plan_arms(options.arms, real, real, options, None)


@pytest.mark.ray
def test_evaluate_runs_the_variants_arms_on_a_variant_output(ray_local, digits_cdm_snapshot, tmp_path):
    spec = "builtin:digits?limit_per_class=6"
    synthesize(SynthesisOptions(digits_cdm_snapshot, str(tmp_path / "var"), n=None, variants_of=spec, per_image=2,
                                strength=(0.5,), workers=1, progress=False))
    options = EvaluationOptions(real=spec, synthetic=str(tmp_path / "var"), report=str(tmp_path / "report"),
                                arms=("real", "classical", "variants", "classical+variants"), seeds=(0, 1), steps=20,
                                sample_size=50)
    result, folder = evaluate(options)
    arms = {arm.name: arm for arm in result.arms}
    assert arms["variants"].class_counts == arms["real"].class_counts == tuple(load_data(spec).class_counts())
    assert "each drawn image swapped for one of its 2 variants with probability 0.5" in arms["variants"].training
    assert "TrivialAugmentWide" in arms["classical+variants"].training
    assert {d.to for d in arms["variants"].differences} == {"real", "classical"}
    assert json.loads((folder / "report.json").read_text())["inputs"]["swap_probability"] == 0.5
    verdicts = verdict_lines(result)
    assert any(line.startswith("variants vs real: ") for line in verdicts), verdicts
    assert any(line.startswith("classical+variants vs real: ") for line in verdicts), verdicts
    other = dataclasses.replace(options, real="builtin:digits?limit_per_class=5", report=str(tmp_path / "other"))
    with pytest.raises(GenaugError, match=r"variants of builtin:digits\?split=train&limit_per_class=6, sha256"):
        evaluate(other)
    wrong = dataclasses.replace(options, arms=("real", "class-mix"), report=str(tmp_path / "wrong"))
    with pytest.raises(GenaugError, match=r"^--arms class-mix: --synthetic holds same-class variants"):
        evaluate(wrong)


@pytest.mark.ray
def test_evaluate_runs_the_class_mix_arms_on_a_mixed_output(ray_local, digits_cdm_snapshot, tmp_path):
    spec = "builtin:digits?limit_per_class=6"
    synthesize(SynthesisOptions(digits_cdm_snapshot, str(tmp_path / "mix"), n=None, variants_of=spec, per_image=9,
                                strength=(0.7,), mix_classes=True, workers=1, progress=False))
    columns = SyntheticImages(str(tmp_path / "mix")).columns(("source_index", "source_label"))
    mixed = load_synthetic(str(tmp_path / "mix"), load_data(spec).class_names)
    assert (mixed.labels != columns["source_label"]).all()  # every variant under another class
    assert np.array_equal(np.bincount(mixed.labels), np.full(10, 6 * 9))  # 10 classes of 6: each gets 54
    options = EvaluationOptions(real=spec, synthetic=str(tmp_path / "mix"), report=str(tmp_path / "report"),
                                arms=("real", "classical", "class-mix", "classical+class-mix"), seeds=(0,), steps=10,
                                sample_size=50, mix_gamma=0.5)
    result, folder = evaluate(options)
    arms = {arm.name: arm for arm in result.arms}
    assert "9 other-class variants with probability 0.5, soft-labelled (1 - s^0.5)" in arms["class-mix"].training
    assert arms["class-mix"].class_counts == arms["real"].class_counts
    assert json.loads((folder / "report.json").read_text())["inputs"]["mix_gamma"] == 0.5
    wrong = dataclasses.replace(options, arms=("real", "variants"), report=str(tmp_path / "wrong"))
    with pytest.raises(GenaugError, match=r"^--arms variants: --synthetic holds variants under other classes"):
        evaluate(wrong)
