"""Arms on tiny real data: every arm runs, pairs by seed with real, mixes give the counts they promise, augmentation is sound.

Guards: gen_aug/evaluation/arms.py, gen_aug/evaluation/mixing.py, gen_aug/classifiers/augment.py,
    gen_aug/classifiers/networks.py, gen_aug/classifiers/classifier.py, gen_aug/evaluation/options.py
"""

import dataclasses

import numpy as np
import pytest
import torch

from gen_aug.data import LabelledImages, load_data
from gen_aug.errors import GenaugError
from gen_aug.evaluation.arms import plan_arms, run_arms
from gen_aug.classifiers.augment import ClassicalAugment, balanced_weights
from gen_aug.classifiers.classifier import ClassifierConfig, train_classifier
from gen_aug.evaluation.mixing import is_imbalanced, mix_real_synthetic, wanted_per_class
from gen_aug.classifiers.networks import SmallImageResNet18
from gen_aug.evaluation.options import ARMS, METRICS, VARIANT_ARMS, EvaluationOptions

FAST = ClassifierConfig(width=4, feature_dim=16, steps=30, batch_size=64)


@pytest.fixture(scope="module")
def digits():
    return load_data("builtin:digits"), load_data("builtin:digits?split=test")


def cut(data: LabelledImages, label: int, keep: int) -> LabelledImages:
    """`data` with only the first `keep` images of class `label`: an imbalanced set."""
    mine = np.flatnonzero(data.labels == label)
    return data.select(np.setdiff1d(np.arange(len(data.labels)), mine[keep:]), f"{data.description}, class {label} cut")


def test_every_arm_runs_and_is_paired_by_seed_with_real_and_classical(digits):
    train, test = digits
    real = cut(train, 0, 14)  # class 0 a tenth of the others: imbalanced
    synthetic = LabelledImages(np.roll(test.images, 1, axis=3), test.labels, test.class_names, "shifted test")
    names = tuple(arm for arm in ARMS if arm not in VARIANT_ARMS)  # they need variants: tests/test_swap.py
    options = EvaluationOptions(seeds=(0, 1), arms=names, mix="balance", mix_ratio=0.5)
    tstr, mixing, arms = run_arms(real, synthetic, test, options, FAST, device="cpu", progress=False)
    assert [arm.name for arm in arms] == list(names) and tstr.name == "tstr"
    by_name = {arm.name: arm for arm in arms}
    assert by_name["real"].train_images == len(real.images) == by_name["reweighted"].train_images
    assert by_name["pretrain"].pretrain_images == len(synthetic.images) and by_name["real"].pretrain_images == 0
    assert by_name["synthetic"].train_images == len(real.images) + mixing.synthetic_images_added
    # Class-balanced arms draw every class equally; the classical arm does too on this imbalanced set.
    for name in ("reweighted", "classical"):
        assert by_name[name].sampled_shares == pytest.approx([0.1] * 10)
    assert by_name["real"].sampled_shares[0] < 0.02
    assert "class-balanced" in by_name["classical"].training and "TrivialAugmentWide" in by_name["classical"].training
    for arm in [tstr, *arms]:
        assert len(arm.accuracy.per_seed) == 2 and all(0 <= v <= 1 for v in arm.accuracy.per_seed)
        assert all(arm.score(metric).mean is not None for metric in METRICS)
        baselines = {"real", "classical"} - {arm.name}
        assert {(d.to, d.metric) for d in arm.differences} == {(b, m) for b in baselines for m in METRICS}
        real_seeds = by_name["real"].accuracy.per_seed
        if arm.name != "real":
            expected = 100 * np.mean(np.subtract(arm.accuracy.per_seed, real_seeds))
            assert arm.difference("real", "accuracy").mean_points == pytest.approx(expected)


def test_balance_fills_every_class_to_the_largest_and_beyond_at_the_ratio(digits):
    train, test = digits
    real = cut(train, 3, 20)
    largest = int(real.class_counts().max())
    plenty = LabelledImages(np.concatenate([train.images] * 3), np.concatenate([train.labels] * 3),
                            train.class_names, "plenty")
    topped = mix_real_synthetic(real, plenty, 0.0, mix="balance")
    assert topped.class_counts().tolist() == [largest] * 10
    more = mix_real_synthetic(real, plenty, 1.5, mix="balance")
    assert more.class_counts().tolist() == [round(largest * 2.5)] * 10
    added = more.class_counts() - real.class_counts()
    assert added.min() == round(largest * 2.5) - largest > 0  # every class gets a synthetic share
    assert wanted_per_class(np.array([10, 40]), 0.5, "balance") == [50, 20]
    short = mix_real_synthetic(real, test, 1.0, mix="balance")  # test has ~36 per class: a class gives all it has
    assert np.array_equal(short.class_counts(), real.class_counts() + test.class_counts())
    with pytest.raises(GenaugError, match="mix 'even'"):
        wanted_per_class(np.array([1, 2]), 1.0, "even")


def test_the_top_up_arm_fills_to_the_largest_class_whatever_the_mix(digits):
    train, test = digits
    real = cut(train, 5, 30)
    plans, mixing = plan_arms(("real", "synthetic", "top-up"), real, train, EvaluationOptions(mix_ratio=0.2))
    top_up = plans[2].train.class_counts()
    assert top_up.tolist() == [int(real.class_counts().max())] * 10
    assert mixing.synthetic_per_class == tuple(round(0.2 * c) for c in real.class_counts())
    assert plans[1].train.class_counts().tolist() == [c + round(0.2 * c) for c in real.class_counts()]


def test_an_identity_augment_trains_the_same_network_so_arms_share_weights_and_batches(digits):
    train, _ = digits
    plain = train_classifier(train.images, train.labels, 10, FAST, seed=3, device="cpu")
    calls = []

    def identity(batch, generator):
        calls.append(generator.initial_seed())
        return batch

    same = train_classifier(train.images, train.labels, 10, FAST, seed=3, device="cpu", augment=identity)
    assert len(calls) == FAST.steps
    for a, b in zip(plain.model.state_dict().values(), same.model.state_dict().values()):
        assert torch.equal(a, b)


def test_classical_augmentation_is_seeded_changes_images_and_leaves_the_global_generator_alone(digits):
    train, _ = digits
    images = torch.from_numpy(train.images[:64])
    augment = ClassicalAugment("randaugment", flip=True)
    state = torch.get_rng_state()
    first = augment(images, torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)
    assert first.dtype == torch.uint8 and first.shape == images.shape
    assert torch.equal(first, augment(images, torch.Generator().manual_seed(1)))
    assert not torch.equal(first, images) and not torch.equal(first, augment(images, torch.Generator().manual_seed(2)))


def test_balanced_weights_give_every_class_the_same_total(digits):
    train, _ = digits
    labels = torch.from_numpy(cut(train, 2, 5).labels)
    weights = balanced_weights(labels, 10)
    totals = torch.zeros(10, dtype=torch.float64).index_add_(0, labels, weights)
    assert torch.allclose(totals, torch.ones(10, dtype=torch.float64))
    assert is_imbalanced(np.bincount(labels)) and not is_imbalanced(train.class_counts())


@pytest.mark.parametrize("side", [8, 28])
def test_resnet18_keeps_small_images_whole_and_trains(side):
    data = load_data(f"builtin:digits?resolution={side}")
    three = data.select(data.labels < 3)
    network = SmallImageResNet18(1, 3)
    stem = network.body.conv1
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1) and isinstance(network.body.maxpool, torch.nn.Identity)
    trained = train_classifier(three.images[:40], three.labels[:40], 3, dataclasses.replace(FAST, steps=2, batch_size=8),
                               device="cpu", network="resnet18")
    assert trained.predict_proba(three.images[:5]).shape == (5, 3)
    assert trained.embed(three.images[:2]).shape == (2, 512)


def test_only_resnet18_trains_in_bfloat16_and_only_where_the_device_has_it():
    from gen_aug.classifiers.classifier import training_precision

    cpu = torch.device("cpu")
    with training_precision("small-cnn", cpu):
        assert not torch.is_autocast_enabled("cpu")
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    with training_precision("resnet18", cpu):
        assert torch.is_autocast_enabled("cpu") == native
        if native:
            assert torch.nn.Linear(4, 2)(torch.ones(1, 4)).dtype == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")


def test_pretrain_fine_tunes_the_synthetic_network_on_real(digits):
    train, test = digits
    synthetic = LabelledImages(test.images, test.labels, test.class_names, "test as synthetic")
    options = EvaluationOptions(seeds=(0,), arms=("real", "pretrain"))
    plans, _ = plan_arms(options.arms, train, synthetic, options)
    assert plans[1].pretrain is synthetic and plans[1].train is train
    start = train_classifier(synthetic.images, synthetic.labels, 10, FAST, seed=0, device="cpu")
    tuned = train_classifier(train.images, train.labels, 10, FAST, seed=0, device="cpu", start=start)
    assert not torch.equal(tuned.model.head.weight, start.model.head.weight)
    assert tuned.model is not start.model


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(arms=("synthetic",)), "'real' among them"),
        (dict(arms=("real", "mixup")), "each at most once of real, classical"),
        (dict(mix="balance", real_share=0.5), "none with mix = 'balance'"),
        (dict(seeds=(1, 1)), "each seed once"),
    ],
)
def test_bad_arm_options_are_one_line_errors(options, message):
    with pytest.raises(GenaugError, match=message):
        EvaluationOptions(**options)
