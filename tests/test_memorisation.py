"""Memorisation finds planted copies of training images, in features and in pixels, and not distinct images.

Guards: gen_aug/evaluation/memorisation.py
"""

import numpy as np
import pytest
import torch

from gen_aug.data import LabelledImages, load_data
from gen_aug.classifiers.classifier import ClassifierConfig, reference_classifier
from gen_aug.evaluation.memorisation import CLOSEST_PAIRS, memorisation, nearest


@pytest.fixture(scope="module")
def judge_and_digits(tmp_path_factory):
    train, test = load_data("builtin:digits"), load_data("builtin:digits?split=test")
    config = ClassifierConfig(width=8, feature_dim=32, steps=150, batch_size=64)
    return reference_classifier(train, config, cache_dir=tmp_path_factory.mktemp("cache"), device="cpu"), train, test


def test_planted_copies_are_found_and_distinct_images_are_not(judge_and_digits):
    judge, train, test = judge_and_digits
    copied = np.arange(0, 400, 20)  # 20 training images, every class among them
    images = np.concatenate([train.images[copied], test.images])
    labels = np.concatenate([train.labels[copied], test.labels])
    synthetic = LabelledImages(images, labels, train.class_names, "20 copies + real test")
    found = memorisation(judge, train, test, synthetic, np.arange(len(images)), sample_size=500)
    assert found.synthetic_images == len(images) and found.real_images == len(train.images)
    for space in (found.features, found.pixels):
        assert space.threshold > 0
        # The closest pairs are copies, each found at distance ~0 with the image it copies.
        assert len(space.closest) == CLOSEST_PAIRS
        assert {pair.synthetic_index for pair in space.closest} <= set(range(len(copied)))
        assert all(pair.real_index == copied[pair.synthetic_index] and pair.distance < 1e-3 for pair in space.closest)
        copies = len(copied) / len(images)
        # Every copy counts; distinct digits count about as often as real ones do among themselves (5%).
        assert copies <= space.share_below < copies + 0.12
    assert len(found.pixels.per_class) == 10 and all(share is not None for share in found.pixels.per_class)


def test_distinct_images_alone_are_rarely_flagged(judge_and_digits):
    judge, train, test = judge_and_digits
    found = memorisation(judge, train, test, test, np.arange(len(test.images)), sample_size=500)
    assert found.pixels.share_below < 0.15 and found.features.share_below < 0.15
    # Real test images as the synthetic set: the same share as the real test baseline.
    assert found.pixels.share_below == pytest.approx(found.pixels.real_test_share_below)
    assert found.pixels.closest[0].distance > 0


def test_nearest_excludes_a_point_itself_but_not_its_duplicate():
    points = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    distances, indices = nearest(points, points, exclude=torch.arange(3))
    assert indices.tolist() == [1, 0, 0] and distances.tolist() == pytest.approx([0, 0, 5])
