"""A small CNN trained on real images: judge of synthetic ones, and the downstream classifier whose gain is measured."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gen_aug.atomic import write_atomic
from gen_aug.data import LabelledImages
from gen_aug.errors import GenaugError
from gen_aug.images import to_float

# Bump when the architecture or the training loop changes, so cached classifiers are retrained.
CLASSIFIER_VERSION = 1
INFERENCE_BATCH = 512


@dataclass(frozen=True)
class ClassifierConfig:
    width: int = 16  # channels after the first convolution; later stages have 2x and 4x
    feature_dim: int = 64  # size of the penultimate layer, the embedding used for distances
    steps: int = 1000  # optimiser steps: the budget, equal for every training set whatever its size
    batch_size: int = 128  # images per step (fewer when the set is smaller)
    learning_rate: float = 3e-3  # AdamW peak rate, after a 5% linear warm-up, cosine decay to 0
    weight_decay: float = 5e-4  # AdamW decoupled weight decay
    max_shift_fraction: float = 0.08  # random translation, as a share of the image side (at least 1 px)

    def __post_init__(self):
        for name in ("width", "feature_dim", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise GenaugError(f"classifier {name}={getattr(self, name)} (expected a positive whole number)")
        if not self.learning_rate > 0 or self.weight_decay < 0 or not 0 <= self.max_shift_fraction < 0.5:
            raise GenaugError(
                f"classifier learning_rate={self.learning_rate}, weight_decay={self.weight_decay}, "
                f"max_shift_fraction={self.max_shift_fraction} (expected rate > 0, decay >= 0, 0 <= shift < 0.5)"
            )


class ReferenceCNN(nn.Module):
    """Conv stages at 1, 1/2 and 1/4 resolution, pooled to 2x2, then the embedding and a linear head.

    The adaptive pool makes one architecture serve 8 to 64 pixel images; any channel and class count.
    """

    def __init__(self, channels: int, num_classes: int, width: int, feature_dim: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, width),
            nn.MaxPool2d(2),
            _conv(width, 2 * width),
            _conv(2 * width, 2 * width),
            nn.MaxPool2d(2),
            _conv(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),  # (N, 4*width*2*2)
        )
        self.embed = nn.Sequential(nn.Linear(16 * width, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, C, H, W) in [-1, 1] -> (N, feature_dim) penultimate activations."""
        return self.embed(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()
    )


@dataclass
class Classifier:
    """A trained network with what is needed to use it and to know where it came from."""

    model: ReferenceCNN
    config: ClassifierConfig
    num_classes: int
    image_shape: tuple[int, int, int]  # (C, H, W) it was trained on
    seed: int

    def logits(self, images: np.ndarray) -> torch.Tensor:
        return self._run(images, self.model)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, C, H, W) -> float64 (N, feature_dim) penultimate features."""
        return self._run(images, self.model.features).double().numpy()

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return torch.softmax(self.logits(images), dim=1).double().numpy()

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.logits(images).argmax(dim=1).numpy().astype(np.int64)

    def _run(self, images: np.ndarray, fn) -> torch.Tensor:
        if tuple(images.shape[1:]) != self.image_shape:
            raise GenaugError(
                f"images of shape {'x'.join(map(str, images.shape[1:]))} given to a classifier trained on "
                f"{'x'.join(map(str, self.image_shape))} (expected the same channels x height x width)"
            )
        device = next(self.model.parameters()).device
        self.model.eval()
        outputs = []
        with torch.inference_mode():
            # At least one pass, so an empty set still gives a (0, K) result of the right width.
            for start in range(0, max(len(images), 1), INFERENCE_BATCH):
                batch = torch.from_numpy(np.ascontiguousarray(images[start : start + INFERENCE_BATCH])).to(device)
                outputs.append(fn(to_float(batch)).float().cpu())
        return torch.cat(outputs)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    config: ClassifierConfig = ClassifierConfig(),
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Classifier:
    """Train a ReferenceCNN on uint8 (N, C, H, W) images for exactly `config.steps` steps.

    Everything random (weights, batch order, shifts) comes from one generator seeded by `seed`,
    so the same inputs give the same network on the same machine.
    """
    if len(images) < 2 or len(images) != len(labels):
        raise GenaugError(
            f"classifier training set: {len(images)} images and {len(labels)} labels (expected 2 or more, equal counts)"
        )
    if labels.min() < 0 or labels.max() >= num_classes:
        raise GenaugError(f"classifier training set: labels outside 0..{num_classes - 1}")
    device = torch.device(device) if device is not None else default_device()
    generator = torch.Generator().manual_seed(seed)
    channels, height, width = images.shape[1:]
    model = ReferenceCNN(channels, num_classes, config.width, config.feature_dim)
    _init_weights(model, generator)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup_steps = max(1, config.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup_steps, 0.5 * (1 + math.cos(math.pi * step / config.steps))),
    )
    all_images = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    all_labels = torch.from_numpy(labels.astype(np.int64)).to(device)
    batch_size = min(config.batch_size, len(images))
    max_shift_px = max(1, round(min(height, width) * config.max_shift_fraction)) if config.max_shift_fraction else 0
    order, position = torch.randperm(len(images), generator=generator), 0
    for _ in range(config.steps):
        if position + batch_size > len(order):
            order, position = torch.randperm(len(images), generator=generator), 0
        index = order[position : position + batch_size].to(device)
        position += batch_size
        batch = random_shift(to_float(all_images[index]), max_shift_px, generator)
        loss = nn.functional.cross_entropy(model(batch), all_labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    return Classifier(model, config, num_classes, (channels, height, width), seed)


def _init_weights(model: nn.Module, generator: torch.Generator) -> None:
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def random_shift(images: torch.Tensor, max_shift_px: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by its own offset in [-max_shift_px, max_shift_px], repeating the border pixels."""
    if max_shift_px == 0:
        return images
    count, _, height, width = images.shape
    # Repeating the border fills with the background, dark (MNIST) or light (scans) alike.
    padded = nn.functional.pad(images, (max_shift_px,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * max_shift_px + 1, (2, count), generator=generator).to(images.device)
    rows = offsets[0, :, None] + torch.arange(height, device=images.device)  # (N, H)
    cols = offsets[1, :, None] + torch.arange(width, device=images.device)  # (N, W)
    batch = torch.arange(count, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def accuracy(classifier: Classifier, data: LabelledImages) -> float:
    return float((classifier.predict(data.images) == data.labels).mean())


def per_class_recall(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> list[float | None]:
    """Share of each class's images predicted as that class; None for a class with no images."""
    recalls: list[float | None] = []
    for label in range(num_classes):
        mine = labels == label
        recalls.append(float((predicted[mine] == label).mean()) if mine.any() else None)
    return recalls


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: the argument, else $GENAUG_CACHE, else ~/.cache/genaug."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("GENAUG_CACHE") or Path.home() / ".cache" / "genaug")


def cache_key(train: LabelledImages, config: ClassifierConfig, seed: int) -> str:
    identity = {
        "version": CLASSIFIER_VERSION,
        "data": train.fingerprint,
        "config": asdict(config),
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def reference_classifier(
    train: LabelledImages,
    config: ClassifierConfig = ClassifierConfig(),
    *,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
) -> Classifier:
    """The classifier trained on `train`, from the cache when the same data, config and version trained it before."""
    key = cache_key(train, config, seed)
    folder = cache_root(cache_dir) / "classifiers"
    weights_path, meta_path = folder / f"{key[:32]}.safetensors", folder / f"{key[:32]}.json"
    device = torch.device(device) if device is not None else default_device()
    cached = _load_cached(weights_path, meta_path, key, device)
    if cached is not None:
        return cached
    classifier = train_classifier(train.images, train.labels, train.num_classes, config, seed=seed, device=device)
    meta = {
        "key": key,
        "version": CLASSIFIER_VERSION,
        **classifier_meta(classifier),
        "class_names": list(train.class_names),
        "train_fingerprint": train.fingerprint,
        "train_description": train.description,
    }
    write_atomic(weights_path, classifier_weights(classifier))
    # The meta file is written last: a weights file without it is never trusted.
    write_atomic(meta_path, json.dumps(meta, indent=2).encode())
    return classifier


def classifier_meta(classifier: Classifier) -> dict:
    """What rebuilds the network around its weights (JSON-ready)."""
    return {
        "config": asdict(classifier.config),
        "seed": classifier.seed,
        "num_classes": classifier.num_classes,
        "image_shape": list(classifier.image_shape),
    }


def classifier_weights(classifier: Classifier) -> bytes:
    """The network's weights as safetensors bytes: no pickle, so loading them runs no code."""
    from safetensors.torch import save

    return save({name: tensor.detach().cpu().contiguous() for name, tensor in classifier.model.state_dict().items()})


def load_classifier(weights: bytes, meta: dict, device: torch.device | str = "cpu") -> Classifier:
    """Rebuild a classifier from `classifier_weights` bytes and `classifier_meta`, in eval mode on `device`."""
    from safetensors.torch import load

    config = ClassifierConfig(**meta["config"])
    model = ReferenceCNN(meta["image_shape"][0], meta["num_classes"], config.width, config.feature_dim)
    model.load_state_dict(load(weights))
    model.to(device).eval()
    return Classifier(model, config, meta["num_classes"], tuple(meta["image_shape"]), meta["seed"])


def _load_cached(weights_path: Path, meta_path: Path, key: str, device: torch.device) -> Classifier | None:
    """The cached classifier, or None when it is absent or unreadable (then it is retrained and rewritten)."""
    from safetensors import SafetensorError

    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key:
            return None
        return load_classifier(weights_path.read_bytes(), meta, device)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError):
        return None

