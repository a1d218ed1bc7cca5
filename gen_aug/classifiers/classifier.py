"""A classifier of labelled images: trained on real ones (cached by data and config), it judges synthetic images
for a synthesis filter and is the downstream network whose gain an evaluation measures."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from gen_aug.atomic import write_atomic
from gen_aug.data import LabelledImages
from gen_aug.errors import GenaugError
from gen_aug.classifiers.augment import balanced_weights, random_shift
from gen_aug.classifiers.networks import ReferenceCNN, build_network, init_weights
from gen_aug.images import to_float

# Bump when the architecture or the training loop changes, so cached classifiers are retrained.
CLASSIFIER_VERSION = 1
INFERENCE_BATCH = 512
REFERENCE_SEED = 0  # the judge is one network whatever seeds the downstream runs use

# Networks trained with bfloat16 autocast where the device computes in it natively. ResNet-18 is the
# cost of an evaluation: on a 2-core AVX512-BF16 CPU one 128-image step took 0.53 s in bf16 against
# 1.04 s in float32 (0.88 s channels-last). The small CNN keeps float32: its steps are cheap, and its
# figures and cached judges stay as they were.
MIXED_PRECISION_NETWORKS = ("resnet18",)

# uint8 (N, C, H, W) batch on the training device, generator -> augmented uint8 batch of the same shape
BatchAugment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


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


@dataclass
class Classifier:
    """A trained network with what is needed to use it and to know where it came from."""

    model: nn.Module  # a ReferenceCNN, or any network of networks.py: features() and head
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
    network: str = "small-cnn",
    augment: BatchAugment | None = None,
    balanced: bool = False,
    start: Classifier | None = None,
    progress: str | None = None,
    swap: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Generator], tuple] | None = None,
) -> Classifier:
    """Train a classifier on uint8 (N, C, H, W) images for exactly `config.steps` steps.

    Weights, batch order and shifts come from one generator seeded by `seed`, so the same inputs
    give the same network on the same machine; `augment` draws from a generator of its own, so a
    run with it sees the same initial weights and batches as one without. `balanced` draws each
    batch with replacement, every class equally often; `start` fine-tunes a copy of a trained
    classifier instead of a fresh `network`; `progress` names a tqdm bar on stderr. `swap(index, batch,
    labels, generator)` may replace drawn images (by their index) before augmentation, from a generator of its own
    too, and returns (images, targets): the labels, or soft labels (B, classes) for the cross-entropy.
    """
    _check_training_set(images, labels, num_classes)
    device = torch.device(device) if device is not None else default_device()
    generator = torch.Generator().manual_seed(seed)
    augment_generator, swap_generator = (torch.Generator().manual_seed(int(np.random.SeedSequence([seed, stream])
                                                                           .generate_state(1)[0])) for stream in (1, 2))
    channels, height, width = images.shape[1:]
    model = _starting_network(start, network, channels, num_classes, config, generator).to(device).train()
    optimizer, schedule = _optimiser(model, config)
    all_images = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # uint8 until the batch is drawn
    all_labels = torch.from_numpy(labels.astype(np.int64)).to(device)
    batch_size = min(config.batch_size, len(images))
    max_shift_px = max(1, round(min(height, width) * config.max_shift_fraction)) if config.max_shift_fraction else 0
    if balanced:
        batches = _balanced_batches(balanced_weights(all_labels.cpu(), num_classes), batch_size, generator)
    else:
        batches = _epoch_batches(len(images), batch_size, generator)
    steps = tqdm(range(config.steps), desc=progress, disable=progress is None, file=sys.stderr, unit="step",
                 leave=False, mininterval=1.0)
    for _ in steps:
        index = next(batches).to(device)
        batch, target = all_images[index], all_labels[index]  # target: class numbers, or (B, classes) soft labels
        batch, target = (batch, target) if swap is None else swap(index, batch, target, swap_generator)
        batch = batch if augment is None else augment(batch, augment_generator)
        batch = random_shift(to_float(batch), max_shift_px, generator)
        with training_precision(network, device):
            loss = nn.functional.cross_entropy(model(batch).float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    return Classifier(model, config, num_classes, (channels, height, width), seed)


def training_precision(network: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast for the networks that gain from it on a device with native bfloat16; else float32."""
    if network not in MIXED_PRECISION_NETWORKS:
        return contextlib.nullcontext()
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
    else:
        native = device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.autocast(device.type, dtype=torch.bfloat16) if native else contextlib.nullcontext()


def _starting_network(start: Classifier | None, network: str, channels: int, num_classes: int,
                      config: ClassifierConfig, generator: torch.Generator) -> nn.Module:
    """A copy of `start`'s network to fine-tune, or a fresh `network` initialised from `generator`."""
    if start is not None:
        return copy.deepcopy(start.model)
    model = build_network(network, channels, num_classes, config.width, config.feature_dim)
    init_weights(model, generator)
    return model


def _optimiser(model: nn.Module, config: ClassifierConfig):
    """AdamW, and its rate: a 5% linear warm-up, then cosine decay to 0 at `config.steps`."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup_steps = max(1, config.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup_steps, 0.5 * (1 + math.cos(math.pi * step / config.steps))),
    )
    return optimizer, schedule


def _check_training_set(images: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
    if len(images) < 2 or len(images) != len(labels):
        raise GenaugError(
            f"classifier training set: {len(images)} images and {len(labels)} labels (expected 2 or more, equal counts)"
        )
    if labels.min() < 0 or labels.max() >= num_classes:
        raise GenaugError(f"classifier training set: labels outside 0..{num_classes - 1}")


def _epoch_batches(count: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Index batches of a fresh permutation per pass; the tail too short for a batch waits for the next pass."""
    while True:
        order = torch.randperm(count, generator=generator)
        for position in range(0, count - batch_size + 1, batch_size):
            yield order[position : position + batch_size]


def _balanced_batches(weights: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    while True:
        yield torch.multinomial(weights, batch_size, replacement=True, generator=generator)


def accuracy(classifier: Classifier, data: LabelledImages) -> float:
    return float((classifier.predict(data.images) == data.labels).mean())


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
    progress: str | None = None,
) -> Classifier:
    """The classifier trained on `train`, from the cache when the same data, config and version trained it before;
    `progress` names the training's bar on stderr."""
    key = cache_key(train, config, seed)
    folder = cache_root(cache_dir) / "classifiers"
    weights_path, meta_path = folder / f"{key[:32]}.safetensors", folder / f"{key[:32]}.json"
    device = torch.device(device) if device is not None else default_device()
    cached = _load_cached(weights_path, meta_path, key, device)
    if cached is not None:
        return cached
    classifier = train_classifier(train.images, train.labels, train.num_classes, config, seed=seed, device=device,
                                  progress=progress)
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

