"""Image classifiers below both stages: the judge a synthesis filters and selects with, and the networks an
evaluation trains and scores. Synthesis and evaluation import this package, never each other's insides.

    from gen_aug.classifiers import ClassifierConfig, reference_classifier, train_classifier
"""

from gen_aug.classifiers.classifier import (
    REFERENCE_SEED,
    Classifier,
    ClassifierConfig,
    load_classifier,
    reference_classifier,
    train_classifier,
)

__all__ = ["REFERENCE_SEED", "Classifier", "ClassifierConfig", "load_classifier", "reference_classifier",
           "train_classifier"]
