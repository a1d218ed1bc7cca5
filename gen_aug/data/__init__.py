"""Labelled image sets from a one-string spec: `builtin:digits`, `folder:PATH`, `npz:PATH`, `idx:PATH`.

Every source returns one in-memory type, `LabelledImages`: uint8 images (N, C, H, W), int64 labels,
class names and a description. Options follow a `?`: `split=train|val|test`, `limit_per_class=K`,
`resolution=R`, `channels=1|3`. Sets without splits of their own use the shared protocol: within
each class, in file order, the images whose rank is 4, 9, 14, ... (rank % 5 == 4) are `test`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import parse_qsl

import numpy as np

from gen_aug.data import sources
from gen_aug.errors import GenaugError

SPLITS = ("train", "val", "test")
OPTIONS = ("split", "limit_per_class", "resolution", "channels")
MIN_RESOLUTION, MAX_RESOLUTION = 4, 1024


@dataclass(frozen=True)
class LabelledImages:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,), values in [0, num_classes)
    class_names: tuple[str, ...]
    description: str  # the normalised spec that produced this set

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of every image."""
        return tuple(self.images.shape[1:])

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of pixels, labels and class names: equal sets give equal fingerprints."""
        digest = hashlib.sha256()
        digest.update(json.dumps([list(self.images.shape), list(self.class_names)]).encode())
        digest.update(np.ascontiguousarray(self.images).tobytes())
        digest.update(self.labels.astype("<i8").tobytes())
        return digest.hexdigest()

    def select(self, mask_or_indices: np.ndarray, description: str | None = None) -> "LabelledImages":
        return LabelledImages(
            self.images[mask_or_indices],
            self.labels[mask_or_indices],
            self.class_names,
            description or self.description,
        )


@dataclass(frozen=True)
class DataSpec:
    kind: str
    path: str
    split: str = "train"
    limit_per_class: int | None = None
    resolution: int | None = None
    channels: int | None = None

    def __str__(self) -> str:
        options = [f"split={self.split}"]
        for name in ("limit_per_class", "resolution", "channels"):
            if getattr(self, name) is not None:
                options.append(f"{name}={getattr(self, name)}")
        return f"{self.kind}:{self.path}?{'&'.join(options)}"


def parse_spec(spec: str) -> DataSpec:
    """`kind:path?opt=v&opt=v` -> DataSpec; raises GenaugError naming the spec on any mistake."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in sources.KINDS:
        raise GenaugError(
            f"data spec {spec!r}: unknown kind {kind!r} (expected one of "
            f"{', '.join(k + ':' for k in sources.KINDS)}, e.g. builtin:digits or folder:PATH)"
        )
    path, _, query = rest.partition("?")
    if not path:
        raise GenaugError(f"data spec {spec!r}: missing path after '{kind}:'")
    values: dict[str, object] = {}
    for name, value in parse_qsl(query, keep_blank_values=True, separator="&") if query else []:
        if name not in OPTIONS:
            raise GenaugError(f"data spec {spec!r}: unknown option {name!r} (expected {', '.join(OPTIONS)})")
        values[name] = value if name == "split" else _positive_int(spec, name, value)
    if values.get("split", "train") not in SPLITS:
        raise GenaugError(f"data spec {spec!r}: split={values['split']!r} (expected train, val or test)")
    if values.get("channels") not in (None, 1, 3):
        raise GenaugError(f"data spec {spec!r}: channels={values['channels']} (expected 1 or 3)")
    resolution = values.get("resolution")
    if resolution is not None and not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise GenaugError(
            f"data spec {spec!r}: resolution={resolution} (expected {MIN_RESOLUTION} to {MAX_RESOLUTION})"
        )
    return DataSpec(kind, path, **values)


def _positive_int(spec: str, name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise GenaugError(f"data spec {spec!r}: {name}={value!r} (expected a positive whole number)")
    return number


def load_data(spec: str | DataSpec) -> LabelledImages:
    """Load, split, limit, resize and convert a data set as its spec says."""
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    raw = sources.read(parsed.kind, parsed.path, resolution=parsed.resolution)
    if raw.splits is not None:
        if parsed.split not in raw.splits:
            raise GenaugError(
                f"data {parsed.kind}:{parsed.path}: split {parsed.split!r} does not exist "
                f"(this set has {', '.join(raw.splits)})"
            )
        images, labels = raw.splits[parsed.split]
    else:
        if parsed.split == "val":
            raise GenaugError(
                f"data {parsed.kind}:{parsed.path}: split 'val' does not exist "
                "(sets without their own splits have train and test, by rank in class % 5 == 4)"
            )
        is_test = protocol_test_mask(raw.labels)
        keep = is_test if parsed.split == "test" else ~is_test
        images, labels = raw.images[keep], raw.labels[keep]
    num_classes = len(raw.class_names)
    if num_classes < 2:
        raise GenaugError(
            f"data {parsed.kind}:{parsed.path}: found {num_classes} class (expected 2 or more labelled classes)"
        )
    if parsed.limit_per_class is not None:
        images, labels = _first_per_class(parsed, images, labels, num_classes, raw.class_names)
    if parsed.resolution is not None and images.shape[2:] != (parsed.resolution, parsed.resolution):
        images = resize(images, parsed.resolution)
    if parsed.channels is not None:
        images = convert_channels(images, parsed.channels)
    return LabelledImages(np.ascontiguousarray(images), labels.astype(np.int64), raw.class_names, str(parsed))


def protocol_test_mask(labels: np.ndarray) -> np.ndarray:
    """True where an image's rank within its class (in file order) is 4, 9, 14, ..."""
    rank_in_class = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        rank_in_class[where] = np.arange(len(where))
    return rank_in_class % 5 == 4


def _first_per_class(parsed, images, labels, num_classes, class_names):
    counts = np.bincount(labels, minlength=num_classes)
    short = [f"{class_names[c]} has {counts[c]}" for c in range(num_classes) if counts[c] < parsed.limit_per_class]
    if short:
        raise GenaugError(
            f"data {parsed}: limit_per_class={parsed.limit_per_class} is larger than a class "
            f"({'; '.join(short)} in split {parsed.split})"
        )
    keep = np.concatenate([np.flatnonzero(labels == c)[: parsed.limit_per_class] for c in range(num_classes)])
    keep.sort()  # file order, not class order
    return images[keep], labels[keep]


def resize(images: np.ndarray, resolution: int) -> np.ndarray:
    """Resize uint8 (N, C, H, W) images to (N, C, R, R) with Pillow's antialiased bicubic filter."""
    from PIL import Image

    out = np.empty((len(images), images.shape[1], resolution, resolution), dtype=np.uint8)
    for i, image in enumerate(images):
        for c, plane in enumerate(image):
            out[i, c] = np.asarray(Image.fromarray(plane).resize((resolution, resolution), Image.BICUBIC))
    return out


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Gray -> RGB by repetition; RGB -> gray by ITU-R 601 luma, as Pillow's convert('L') does."""
    if images.shape[1] == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=1)
    weights = np.array([299, 587, 114], dtype=np.uint32).reshape(1, 3, 1, 1)
    luma = (images.astype(np.uint32) * weights).sum(axis=1, keepdims=True)
    return ((luma + 500) // 1000).astype(np.uint8)


def describe(data: LabelledImages) -> str:
    """A short multi-line summary: what `genaug data SPEC` prints."""
    channels, height, width = data.shape
    lines = [
        f"source       {data.description}",
        f"images       {len(data.images):,}",
        f"shape        {channels}x{height}x{width} (channels x height x width), uint8",
        f"classes      {data.num_classes}",
        f"fingerprint  {data.fingerprint[:16]}",
        "per class:",
    ]
    width_name = max(len(name) for name in data.class_names)
    for name, count in zip(data.class_names, data.class_counts()):
        lines.append(f"  {name:<{width_name}}  {count:,}")
    return "\n".join(lines)

