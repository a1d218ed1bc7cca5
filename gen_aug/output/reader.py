"""Reading a finished synthesis output: a torch Dataset over its shards, each shard checked against the manifest when read."""

from __future__ import annotations

import os
import posixpath
from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np
import torch

from gen_aug.data import LabelledImages
from gen_aug.errors import GenaugError
from gen_aug.output.formats import get_format, read_shard
from gen_aug.output.manifest import MANIFEST_NAMES, load_manifest, manifest_name
from gen_aug.output.settings import JobSettings
from gen_aug.output.verification import planned_records


class SyntheticImages(torch.utils.data.Dataset):
    """The (image, label) pairs of a `genaug synthesize` output, in index order.

    `manifest_path` is the output folder (local or a `pyarrow.fs` URI) or its manifest. Images
    are uint8 (C, H, W) tensors, or what `transform` makes of them; labels index `class_names` (by
    default the manifest's; pass the real data's to get its order). Shard files are named by the
    plan, never by paths written in the manifest, and each is hashed as it is read: a shard that
    differs from its manifest record raises GenaugError instead of yielding images. Shards stay
    decoded in memory once read, so shuffled access reads each shard once; `cached_shards=K` keeps
    only the last K, enough for reading in index order with bounded memory.
    """

    def __init__(
        self,
        manifest_path: str | os.PathLike,
        transform: Callable[[torch.Tensor], object] | None = None,
        class_names: Sequence[str] | None = None,
        cached_shards: int | None = None,
    ):
        self.out = output_folder(manifest_path)
        self.location, manifest, self.plan, format_name = load_manifest(self.out, "synthetic images")
        self.shard_format = get_format(format_name)
        self.where = f"{self.out}/{manifest_name(self.location)}"
        self.records = planned_records(manifest, self.plan, self.shard_format, self.where)
        self.class_names = tuple(class_names) if class_names is not None else self.plan.class_names
        self.label_map = label_map(self.plan.class_names, self.class_names, self.where)
        self.transform = transform
        self.cached_shards = self.plan.num_shards if cached_shards is None else max(1, cached_shards)
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return self.plan.n

    def __getitem__(self, index: int) -> tuple[object, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} of {len(self)} synthetic images")
        index %= len(self)
        shard_idx, row = divmod(index, self.plan.shard_size)
        images, labels = self.shard_arrays(shard_idx)
        image = torch.from_numpy(images[row])
        return (self.transform(image) if self.transform is not None else image), int(labels[row])

    def __getstate__(self) -> dict:
        # DataLoader workers get the dataset pickled: send the manifest's facts, not decoded shards.
        return {**self.__dict__, "_cache": OrderedDict()}

    def shard_arrays(self, shard_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images (rows, C, H, W), int64 labels) of one shard, hashed against its record when read."""
        if shard_idx in self._cache:
            self._cache.move_to_end(shard_idx)
            return self._cache[shard_idx]
        images, labels = self._read_checked(shard_idx)
        self._cache[shard_idx] = (images, self.label_map[labels])
        while len(self._cache) > self.cached_shards:
            self._cache.popitem(last=False)
        return self._cache[shard_idx]

    def job_settings(self) -> JobSettings:
        """The settings the job recorded (its filter, sampler, variants' sources), read from the manifest again."""
        _, manifest, _, _ = load_manifest(self.out, "synthetic images")
        return JobSettings.from_dict(manifest, self.where)

    def columns(self, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """A job's extra columns (a variant's `source_index`, a filtered image's `latent_index`) of every row, in
        index order; each shard hashed against its record as it is read."""
        types = self.job_settings().extra_columns()
        missing = [name for name in names if name not in types]
        if missing:
            raise GenaugError(f"{self.where}: no column {missing[0]!r} (expected one of this job's: "
                              f"{', '.join(types) or 'none'})")
        parts = []
        for shard_idx in range(self.plan.num_shards):
            what = f"{self.out}: shard {shard_idx}"
            try:
                parts.append(self.shard_format.decode_columns(self._verified_contents(shard_idx), names, types))
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise GenaugError(f"{what}: not decodable ({error}; expected a shard genaug synthesize wrote)") from None
        return {name: np.concatenate([part[name] for part in parts]) for name in names}

    def _verified_contents(self, shard_idx: int) -> list[bytes]:
        """The bytes of a shard's files, once they hash as its record says."""
        shard, record = self.plan.shard(shard_idx), self.records[shard_idx]
        what = f"{self.out}: shard {shard_idx}"
        try:
            contents, sha256, num_bytes = read_shard(self.location, self.plan, shard, self.shard_format,
                                                     recorded_bytes=record.bytes)
        except OSError as error:
            raise GenaugError(f"{what}: unreadable ({error}; expected the files genaug synthesize wrote)") from None
        if (sha256, num_bytes) != (record.sha256, record.bytes):
            raise GenaugError(
                f"{what}: sha256 {sha256[:16]}... of {num_bytes:,} bytes differs from the manifest's "
                f"(expected {record.sha256[:16]}...; `genaug verify {self.out}` lists every problem)"
            )
        return contents

    def _read_checked(self, shard_idx: int) -> tuple[np.ndarray, np.ndarray]:
        shard = self.plan.shard(shard_idx)
        what = f"{self.out}: shard {shard_idx}"
        contents = self._verified_contents(shard_idx)
        try:
            images, labels = self.shard_format.decode(self.plan, shard, contents)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise GenaugError(f"{what}: not decodable ({error}; expected a shard genaug synthesize wrote)") from None
        num_classes = len(self.plan.class_names)
        if len(images) != shard.rows or len(labels) != shard.rows or labels.min() < 0 or labels.max() >= num_classes:
            raise GenaugError(
                f"{what}: {len(images)} images, labels {labels.min()}-{labels.max()} "
                f"(expected {shard.rows} images, labels 0-{num_classes - 1})"
            )
        return images, labels


def output_folder(manifest_path: str | os.PathLike) -> str:
    """The output folder of a path that names either the folder or the manifest in it."""
    path = os.fspath(manifest_path).rstrip("/")
    return posixpath.dirname(path) if posixpath.basename(path) in MANIFEST_NAMES else path


def label_map(manifest_names: Sequence[str], wanted_names: Sequence[str], where: str) -> np.ndarray:
    """int64 array: manifest label -> index of the same class name in `wanted_names`."""
    if sorted(manifest_names) != sorted(wanted_names) or len(set(wanted_names)) != len(wanted_names):
        raise GenaugError(
            f"{where}: classes {', '.join(manifest_names)} (expected the real data's classes "
            f"{', '.join(wanted_names)}, in any order)"
        )
    return np.array([list(wanted_names).index(name) for name in manifest_names], dtype=np.int64)


def load_synthetic(out: str | os.PathLike, class_names: Sequence[str] | None = None) -> LabelledImages:
    """A whole synthesis output in memory, every shard checked against the manifest, labels in `class_names` order:
    images at the model's size, as the classifiers and metrics take them (not a --restore output's)."""
    dataset = SyntheticImages(out, class_names=class_names, cached_shards=1)
    if dataset.plan.restore is not None:
        raise GenaugError(
            f"synthetic images {str(dataset.out)!r}: written with --restore at {dataset.plan.restore.describe()}, "
            "for use beside the source pictures (expected an output at the model's own size: synthesize again "
            "without --restore to evaluate)")
    shards = [dataset.shard_arrays(shard.shard_idx) for shard in dataset.plan.shards()]
    return LabelledImages(
        np.concatenate([images for images, _ in shards]),
        np.concatenate([labels for _, labels in shards]),
        dataset.class_names,
        f"synthetic:{dataset.out}",
    )
