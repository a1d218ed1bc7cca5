"""The distill arm's labels: real images keep their class, synthetic ones take a teacher's soft probabilities.

Knowledge distillation (Hinton et al., 2015) used for augmentation: a synthetic image is labelled by
what a classifier trained on the real images alone believes of it, so an image that looks like two
classes teaches both, and one drawn under the wrong class teaches what it looks like, not what it was
asked to be. The teacher is the same seed's `classical` classifier; the student trains with the same
classical augmentation on real + synthetic. Cross-entropy against soft targets is the KL divergence
to them plus their entropy, a constant, so its gradients are the KL loss's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gen_aug.data import LabelledImages
from gen_aug.errors import GenaugError

TEACHER_ARM = "classical"  # whose classifier of the same seed labels the synthetic images


@dataclass(frozen=True)
class TeacherLabels:
    """Every training image's target: one-hot for the real images, the teacher's probabilities for the synthetic."""

    targets: torch.Tensor  # float32 (N, classes); each row sums to 1

    @classmethod
    def of(cls, train: LabelledImages, synthetic_from: int, teacher) -> "TeacherLabels":
        """Rows `synthetic_from` on of `train` are synthetic; `teacher`: a trained Classifier of train's classes."""
        if not 0 <= synthetic_from <= len(train.images) or teacher.num_classes != train.num_classes:
            raise GenaugError(f"distill: a teacher of {teacher.num_classes} classes for rows {synthetic_from} on of "
                              f"{len(train.images)} (expected {train.num_classes} classes, rows within the set)")
        targets = np.eye(train.num_classes, dtype=np.float32)[train.labels]
        if synthetic_from < len(train.images):
            probabilities = teacher.predict_proba(train.images[synthetic_from:])
            targets[synthetic_from:] = (probabilities / probabilities.sum(axis=1, keepdims=True)).astype(np.float32)
        return cls(torch.from_numpy(targets))

    def swap(self, index: torch.Tensor, batch: torch.Tensor, labels: torch.Tensor,
             generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """train_classifier's swap hook: the images as drawn, the targets of their rows; draws nothing."""
        return batch, self.targets[index.cpu()].to(labels.device)
