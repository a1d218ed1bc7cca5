"""A classifier's scores on a labelled test set, from its class probabilities: scikit-learn's definitions."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score, roc_auc_score


def per_class_recall(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> list[float | None]:
    """Share of each class's images predicted as that class; None for a class with no images."""
    counts = np.bincount(labels, minlength=num_classes)
    recalls = recall_score(labels, predicted, labels=range(num_classes), average=None, zero_division=0)
    return [float(recall) if count else None for recall, count in zip(recalls, counts)]


def scores(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """accuracy, balanced_accuracy, macro_f1 and auc of (N, K) class probabilities against (N,) true labels.

    Balanced accuracy is the mean recall over the classes of the test set, macro-F1 the unweighted
    mean F1 over the classes in labels or predictions (scikit-learn's defaults). AUC is one-vs-rest,
    macro-averaged; None when a class has no test images (it is undefined then).
    """
    num_classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    present = np.bincount(labels, minlength=num_classes) > 0
    with warnings.catch_warnings():
        # A class predicted but absent from the test set: scikit-learn warns, and computes what is documented.
        warnings.simplefilter("ignore", UserWarning)
        balanced = balanced_accuracy_score(labels, predicted)
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(f1_score(labels, predicted, average="macro", zero_division=0)),
        "auc": _auc(probabilities, labels) if present.all() else None,
    }


def _auc(probabilities: np.ndarray, labels: np.ndarray) -> float:
    if probabilities.shape[1] == 2:
        return float(roc_auc_score(labels, probabilities[:, 1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        # Rows are renormalised in float64: softmax in float32 can sum to 1 +- 1e-7, which scikit-learn refuses.
        rows = probabilities / probabilities.sum(axis=1, keepdims=True)
        return float(roc_auc_score(labels, rows, multi_class="ovr", average="macro"))
