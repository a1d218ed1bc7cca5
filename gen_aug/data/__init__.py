"""Labelled image sets from a one-string spec: `builtin:digits`, `folder:PATH`, `npz:PATH`, `idx:PATH`.

Every source returns one in-memory type, `LabelledImages`: uint8 images (N, C, H, W), int64 labels,
class names and a description. Options follow a `?`: `split=train|val|test`, `limit_per_class=K`,
`resolution=R` (with `resize=stretch|crop|pad` for non-square images), `channels=1|3`, and for
folders `intensity=set|image|full` and `skip_bad=true` (gen_aug/data/spec.py). Sets without splits
of their own use the shared protocol: within each class, in file order, the images whose rank is
4, 9, 14, ... (rank % 5 == 4) are `test`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from gen_aug.data import sources
from gen_aug.data.form import SourceForm, resized_form
from gen_aug.data.spec import SPLITS, DataSpec, parse_spec
from gen_aug.errors import GenaugError

__all__ = ["SPLITS", "DataSpec", "LabelledImages", "convert_channels", "describe", "load_data", "parse_spec",
           "protocol_test_mask", "resize"]

# The square sides every model family trains at: ModelConfig's range (gen_aug/models/layers.py), repeated
# here so that `genaug data` need not import torch; tests/test_resolutions.py keeps the two equal.
MODEL_SIDES = (8, 256)


@dataclass(frozen=True)
class LabelledImages:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,), values in [0, num_classes)
    class_names: tuple[str, ...]
    description: str  # the normalised spec that produced this set
    notes: tuple[str, ...] = ()  # what loading did beyond decoding: mappings, dropped alpha, skipped files
    pixel_mapping: str = ""  # how 16/32-bit pixels became uint8 ("" when none were): part of the identity
    form: SourceForm | None = None  # the pictures' own size and depth before loading changed them (--restore)

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
        """sha256 of pixels, labels, class names and any 16/32-bit mapping: equal sets give equal fingerprints."""
        digest = hashlib.sha256()
        header = [list(self.images.shape), list(self.class_names)]
        # Two intensity choices are two data sets even where they happen to give equal pixels; 8-bit sets keep
        # the fingerprint they always had.
        digest.update(json.dumps(header + [self.pixel_mapping] if self.pixel_mapping else header).encode())
        digest.update(np.ascontiguousarray(self.images).tobytes())
        digest.update(self.labels.astype("<i8").tobytes())
        return digest.hexdigest()

    def select(self, mask_or_indices: np.ndarray, description: str | None = None) -> "LabelledImages":
        return LabelledImages(
            self.images[mask_or_indices],
            self.labels[mask_or_indices],
            self.class_names,
            description or self.description,
            self.notes,
            self.pixel_mapping,
            self.form,
        )


def _named(parsed: DataSpec, numbered: tuple[str, ...]) -> tuple[str, ...]:
    """?classes=: one name per numbered class, in label order."""
    if len(parsed.classes) != len(numbered):
        raise GenaugError(f"data {parsed.kind}:{parsed.path}: classes= gives {len(parsed.classes)} names for "
                          f"{len(numbered)} classes ({', '.join(numbered)}; expected one name each, in label order)")
    return parsed.classes


def load_data(spec: str | DataSpec) -> LabelledImages:
    """Load, split, limit, resize and convert a data set as its spec says."""
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    raw = sources.read(parsed)
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
    class_names = raw.class_names if parsed.classes is None else _named(parsed, raw.class_names)
    num_classes = len(class_names)
    if num_classes < 2:
        raise GenaugError(
            f"data {parsed.kind}:{parsed.path}: found {num_classes} class (expected 2 or more labelled classes)"
        )
    if parsed.limit_per_class is not None:
        images, labels = _first_per_class(parsed, images, labels, num_classes, class_names)
    if parsed.class_fraction is not None:
        images, labels = _cut_class(parsed, images, labels, class_names)
    notes = raw.notes
    form = raw.form or SourceForm(*images.shape[2:])  # a folder's pictures were resized as they were read
    form = resized_form(form, parsed.resolution, parsed.resize)
    if parsed.resolution is not None and images.shape[2:] != (parsed.resolution, parsed.resolution):
        from gen_aug.data.resizing import resize_note, resized_set  # Pillow only where something is resized

        not_square = len(images) if images.shape[2] != images.shape[3] else 0
        note = resize_note(len(images), not_square, parsed.resolution, parsed.resize)
        notes += (note,) if note else ()
        images = resized_set(images, parsed.resolution, parsed.resize)
    if parsed.channels is not None:
        images = convert_channels(images, parsed.channels)
    return LabelledImages(
        np.ascontiguousarray(images), labels.astype(np.int64), class_names, str(parsed), notes,
        raw.pixel_mapping, form,
    )


def protocol_test_mask(labels: np.ndarray) -> np.ndarray:
    """True where an image's rank within its class (in file order) is 4, 9, 14, ..."""
    rank_in_class = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        rank_in_class[where] = np.arange(len(where))
    return rank_in_class % 5 == 4


def _cut_class(parsed, images, labels, class_names):
    """Keep the first round(F x count) images (at least one) of the class named, in file order: no randomness."""
    name, fraction = parsed.class_fraction
    if name in class_names:
        label = class_names.index(name)
    elif name.isdigit() and int(name) < len(class_names):
        label = int(name)
    else:
        raise GenaugError(f"data {parsed}: class_fraction names class {name!r} (expected one of "
                          f"{', '.join(class_names)} or an index 0-{len(class_names) - 1})")
    members = np.flatnonzero(labels == label)
    dropped = members[max(1, round(fraction * len(members))):]
    keep = np.setdiff1d(np.arange(len(labels)), dropped)
    return images[keep], labels[keep]


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
        *(f"loading      {note}" for note in data.notes),
        *_training_hint(height, width),
        f"classes      {data.num_classes}",
        f"fingerprint  {data.fingerprint[:16]}",
        "per class:",
    ]
    shown = [name if name.isprintable() else repr(name) for name in data.class_names]  # one line per class
    width_name = max(len(name) for name in shown)
    for name, count in zip(shown, data.class_counts()):
        lines.append(f"  {name:<{width_name}}  {count:,}")
    return "\n".join(lines)


def _training_hint(height: int, width: int) -> list[str]:
    """A line saying how to make the images trainable, when they are not square or not 8..256 px."""
    low, high = MODEL_SIDES
    if height == width and low <= height <= high:
        return []
    aspect = "; resize=crop or resize=pad keeps the aspect ratio" if height != width else ""
    return [f"training     the models take square images of {low} to {high} px: add ?resolution=R{aspect}"]

