"""Reference classifier: learns the digits, is deterministic per seed, any shape and class count, cached safely.

Guards: gen_aug/classifiers/classifier.py, gen_aug/classifiers/networks.py, gen_aug/classifiers/augment.py
"""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from gen_aug.classifiers import classifier as classifier_module
from gen_aug.classifiers.classifier import (
    ClassifierConfig,
    accuracy,
    cache_key,
    cache_root,
    reference_classifier,
    train_classifier,
)
from gen_aug.data import load_data
from gen_aug.classifiers.augment import random_shift
from gen_aug.errors import GenaugError

TINY = ClassifierConfig(width=8, feature_dim=32, steps=200, batch_size=64)


@pytest.fixture(scope="module")
def digits():
    return load_data("builtin:digits"), load_data("builtin:digits?split=test")


def test_learns_digits_and_is_deterministic_per_seed(digits):
    train, test = digits
    first = train_classifier(train.images, train.labels, train.num_classes, TINY, seed=0)
    assert accuracy(first, test) > 0.9
    short = replace(TINY, steps=20)
    again, same, other = (train_classifier(train.images, train.labels, 10, short, seed=s) for s in (0, 0, 1))
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(), same.model.state_dict().values()))
    assert not torch.equal(again.model.head.weight, other.model.head.weight)
    probabilities = first.predict_proba(test.images)
    assert probabilities.shape == (len(test.images), 10) and np.allclose(probabilities.sum(axis=1), 1)
    assert np.array_equal(probabilities.argmax(axis=1), first.predict(test.images))
    assert first.embed(test.images).shape == (len(test.images), TINY.feature_dim)


@pytest.mark.parametrize("spec", ["builtin:digits?resolution=32&channels=3", "builtin:digits?resolution=64"])
def test_any_size_channels_and_class_count(spec):
    data = load_data(spec)
    three_classes = data.select(data.labels < 3)
    config = ClassifierConfig(width=4, feature_dim=8, steps=3, batch_size=16)
    trained = train_classifier(three_classes.images, three_classes.labels, 3, config, seed=0)
    assert trained.predict_proba(three_classes.images[:5]).shape == (5, 3)
    assert trained.embed(three_classes.images[:0]).shape == (0, 8)
    with pytest.raises(GenaugError, match=r"trained on .* \(expected the same channels x height x width\)"):
        trained.predict(three_classes.images[:, :, :8, :8])


def test_random_shift_moves_each_image_within_the_limit():
    images = torch.full((64, 1, 9, 9), -1.0)
    images[:, 0, 4, 4] = 1.0  # one bright pixel in the centre
    shifted = random_shift(images, 2, torch.Generator().manual_seed(0))
    rows, cols = torch.nonzero(shifted[:, 0] == 1.0)[:, 1:].T
    assert shifted.shape == images.shape and len(rows) == 64  # the pixel survives in every image
    assert set(rows.tolist()) == {2, 3, 4, 5, 6} and set(cols.tolist()) == {2, 3, 4, 5, 6}
    assert torch.equal(random_shift(images, 0, torch.Generator()), images)


def test_bad_training_inputs_and_configs_are_one_line_errors(digits):
    train, _ = digits
    with pytest.raises(GenaugError, match=r"steps=0 \(expected a positive whole number\)"):
        ClassifierConfig(steps=0)
    with pytest.raises(GenaugError, match="max_shift_fraction=0.6"):
        ClassifierConfig(max_shift_fraction=0.6)
    with pytest.raises(GenaugError, match="1 images and 1 labels"):
        train_classifier(train.images[:1], train.labels[:1], 10, TINY)
    with pytest.raises(GenaugError, match=r"labels outside 0\.\.4"):
        train_classifier(train.images, train.labels, 5, TINY)


def test_cache_reuses_the_trained_network_and_keys_on_data_config_and_seed(digits, tmp_path, monkeypatch):
    train, test = digits
    trained = reference_classifier(train, TINY, cache_dir=tmp_path)
    key = cache_key(train, TINY, 0)
    weights, meta = tmp_path / "classifiers" / f"{key[:32]}.safetensors", tmp_path / "classifiers" / f"{key[:32]}.json"
    assert sorted(p.name for p in weights.parent.iterdir()) == sorted([weights.name, meta.name])
    assert json.loads(meta.read_text())["train_fingerprint"] == train.fingerprint

    def must_not_train(*args, **kwargs):
        raise AssertionError("a cached classifier was trained again")

    monkeypatch.setattr(classifier_module, "train_classifier", must_not_train)
    cached = reference_classifier(train, TINY, cache_dir=tmp_path)
    assert np.array_equal(cached.predict_proba(test.images), trained.predict_proba(test.images))
    assert len({key, cache_key(train, TINY, 1), cache_key(test, TINY, 0), cache_key(train, ClassifierConfig(), 0)}) == 4


def test_unreadable_cache_is_retrained_and_rewritten(digits, tmp_path):
    train, test = digits
    trained = reference_classifier(train, TINY, cache_dir=tmp_path)
    weights = next((tmp_path / "classifiers").glob("*.safetensors"))
    weights.write_bytes(b"not a safetensors file")
    again = reference_classifier(train, TINY, cache_dir=tmp_path)
    assert np.array_equal(again.predict(test.images), trained.predict(test.images))
    assert weights.stat().st_size > 1000


def test_cache_folder_comes_from_argument_then_environment_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GENAUG_CACHE", str(tmp_path / "from-env"))
    assert cache_root(tmp_path / "given") == tmp_path / "given"
    assert cache_root() == tmp_path / "from-env"
    monkeypatch.delenv("GENAUG_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_root() == tmp_path / ".cache" / "genaug"
