"""Shard formats as objects from one table: each names a shard's files, encodes, digests and decodes them.

A shard is the images of one contiguous index range. `parquet` and `raw` shards are one Parquet
file each, named as a Hugging Face dataset repository names them (data/train-00000-of-00010.parquet;
shard-00000.parquet at the root in outputs of the older 'flat' layout); `png` shards are one PNG per image in an ImageFolder tree, <class folder>/<index>.png.
A new format is one new class in FORMATS. Every shard is written and read through the same two
functions below, so the digest a writer records is the one every reader recomputes.
"""

from __future__ import annotations

import abc
import hashlib
import re
import unicodedata
from collections.abc import Mapping

import numpy as np

from gen_aug.errors import GenaugError
from gen_aug.output import encoding
from gen_aug.output.plan import Plan, Shard
from gen_aug.output.records import ShardRecord
from gen_aug.output.storage import Location

DATA_DIR = "data"  # the Parquet shards' folder in the 'hub' layout
MAX_PATH_PART_BYTES = 96  # well under every file system's 255-byte name limit, with room for a suffix
_UNSAFE_CHARACTERS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
# The names genaug writes at an output's root (manifest, legacy manifest, card, state, data): a class
# folder of one of these would be taken for genaug's own file. Lower case: some file systems ignore case.
RESERVED_ROOT_NAMES = ("_manifest.json", "manifest.json", "readme.md", ".genaug", DATA_DIR)


class ShardFormat(abc.ABC):
    """One shard's files, their bytes from images, their digest and their images again."""

    name: str
    sync_files = True  # fsync each file before its rename

    @abc.abstractmethod
    def files(self, plan: Plan, shard: Shard) -> list[str]:
        """The shard's files, relative to the output folder, in index order."""

    @abc.abstractmethod
    def listed_file(self, plan: Plan, shard_idx: int) -> str | None:
        """What a manifest record names as the shard's file; None where the files follow from the plan."""

    @abc.abstractmethod
    def encode(self, plan: Plan, shard: Shard, images: np.ndarray, columns: Mapping[str, np.ndarray] | None) -> list[bytes]:
        """The bytes of each of `files(plan, shard)`, from uint8 (rows, C, H, W) images."""

    @abc.abstractmethod
    def digest(self, files: list[tuple[str, bytes]]) -> str:
        """sha256 (hex) of a shard's (path, bytes) pairs, in the order `files` gives them."""

    @abc.abstractmethod
    def decode(self, plan: Plan, shard: Shard, contents: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images (rows, C, H, W), int64 labels) from the bytes of the shard's files."""

    @abc.abstractmethod
    def decode_columns(self, contents: list[bytes], names: tuple[str, ...],
                       types: Mapping[str, str]) -> dict[str, np.ndarray]:
        """A job's extra columns `names` (of `datasets` dtypes `types`) from the bytes of the shard's files."""


class _OneParquetFile(ShardFormat):
    def files(self, plan: Plan, shard: Shard) -> list[str]:
        return [shard_file(plan, shard.shard_idx)]

    def listed_file(self, plan: Plan, shard_idx: int) -> str | None:
        return shard_file(plan, shard_idx)

    def digest(self, files: list[tuple[str, bytes]]) -> str:
        ((_, data),) = files
        return hashlib.sha256(data).hexdigest()

    def decode_columns(self, contents, names, types):
        return encoding.decode_parquet_columns(contents[0], names)


class ParquetFormat(_OneParquetFile):
    """PNG bytes in a zstd Parquet file that Hugging Face `datasets` reads as Image + ClassLabel."""

    name = "parquet"

    def encode(self, plan, shard, images, columns):
        return [encoding.png_parquet_bytes(plan, shard, encoding.encode_png(images, restore=plan.restore), columns)]

    def decode(self, plan, shard, contents):
        return encoding.decode_png_parquet(contents[0])


class RawFormat(_OneParquetFile):
    """uint8 pixels in a fixed-size binary column, no PNG at all: for readers that decode with numpy."""

    name = "raw"

    def encode(self, plan, shard, images, columns):
        return [encoding.raw_parquet_bytes(plan, shard, images, columns)]

    def decode(self, plan, shard, contents):
        return encoding.decode_raw_parquet(contents[0], shard.rows)


class PngFormat(ShardFormat):
    """An ImageFolder tree that torchvision reads as it is: <class folder>/<index>.png."""

    name = "png"
    # An fsync per image would cost more than encoding it. A PNG torn by a crash fails its shard's
    # digest on --resume, verify and every read, so it is found and rewritten, never trusted.
    sync_files = False

    def files(self, plan: Plan, shard: Shard) -> list[str]:
        folders = class_dirs(plan.class_names)
        labels = plan.labels(shard.start, shard.stop)
        return [f"{folders[label]}/{index}.png" for index, label in zip(range(shard.start, shard.stop), labels)]

    def listed_file(self, plan: Plan, shard_idx: int) -> str | None:
        return None

    def encode(self, plan, shard, images, columns):
        return encoding.encode_png(images, columns, plan.restore)

    def digest(self, files: list[tuple[str, bytes]]) -> str:
        # Each file's path and bytes, lengths included, so no two trees share a digest by shifting bytes.
        digest = hashlib.sha256(b"genaug png shard v1\n")
        for relative, data in files:
            digest.update(f"{relative}\0{len(data)}\0".encode())
            digest.update(data)
        return digest.hexdigest()

    def decode(self, plan, shard, contents):
        return np.stack([encoding.decode_png(data) for data in contents]), plan.labels(shard.start, shard.stop)

    def decode_columns(self, contents, names, types):
        return encoding.decode_png_columns(contents, names, types)


FORMATS: dict[str, ShardFormat] = {shard_format.name: shard_format for shard_format in
                                   (ParquetFormat(), PngFormat(), RawFormat())}


def get_format(name: object, where: str = "--format") -> ShardFormat:
    if name not in FORMATS:
        raise GenaugError(f"{where} {name!r}: unknown (expected one of {', '.join(FORMATS)})")
    return FORMATS[name]


def shard_file(plan: Plan, shard_idx: int) -> str:
    if plan.layout == "flat":
        return f"shard-{shard_idx:05d}.parquet"
    return f"{DATA_DIR}/train-{shard_idx:05d}-of-{plan.num_shards:05d}.parquet"


def write_shard(location: Location, plan: Plan, shard: Shard, images: np.ndarray, shard_format: ShardFormat,
                columns: Mapping[str, np.ndarray] | None = None) -> ShardRecord:
    """Encode one shard's uint8 (rows, C, H, W) images, write each file atomically; returns the shard's record.

    `columns`: the job's extra values of each row, stored beside it (a filtered job's latent indices, a variant
    job's sources).
    """
    files = list(zip(shard_format.files(plan, shard), shard_format.encode(plan, shard, images, columns)))
    for relative, data in files:
        location.write_atomic(relative, data, sync=shard_format.sync_files)
    return ShardRecord(
        shard_idx=shard.shard_idx, file=shard_format.listed_file(plan, shard.shard_idx), start=shard.start,
        stop=shard.stop, rows=shard.rows,
        class_counts=tuple(np.bincount(plan.labels(shard.start, shard.stop), minlength=len(plan.class_names)).tolist()),
        bytes=sum(len(data) for _, data in files), sha256=shard_format.digest(files),
    )


def read_shard(location: Location, plan: Plan, shard: Shard, shard_format: ShardFormat,
               recorded_bytes: int | None = None) -> tuple[list[bytes], str, int]:
    """(the bytes of each of the shard's files, their digest, their total bytes), read as its writer wrote them.

    With `recorded_bytes`, a file far larger than the record says, or one that is no regular file (a
    link, /dev/zero, a FIFO), is an OSError before anything of it is read into memory; a file a little
    off its size is read, and its digest tells.
    """
    limit = None if recorded_bytes is None else 2 * recorded_bytes + 2**20
    files = [(relative, location.read(relative, limit)) for relative in shard_format.files(plan, shard)]
    return [data for _, data in files], shard_format.digest(files), sum(len(data) for _, data in files)


def safe_path_part(name: str) -> str:
    """A class name as one harmless folder name: no separators, NUL, control or format characters, '.', '..', names
    genaug writes at the root, or overlong names."""
    part = _UNSAFE_CHARACTERS.sub("_", unicodedata.normalize("NFC", name)).strip()
    # Format characters (U+202E and kin) are invisible and can show a name reversed.
    part = "".join("_" if unicodedata.category(char) == "Cf" else char for char in part)
    if part.lower() in RESERVED_ROOT_NAMES:
        part += "_"
    if not part or set(part) == {"."}:
        part = "_" + part
    if part.startswith("."):  # hidden folders are skipped by many readers
        part = "_" + part
    encoded = part.encode()
    if len(encoded) > MAX_PATH_PART_BYTES:
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        part = encoded[: MAX_PATH_PART_BYTES - 13].decode(errors="ignore") + "-" + digest
    return part


def class_dirs(class_names: tuple[str, ...]) -> tuple[str, ...]:
    """One distinct safe folder per class; names that collide once made safe get their class index appended."""
    parts = [safe_path_part(name) for name in class_names]
    return tuple(
        f"{part}-{label}" if parts.count(part) > 1 else part for label, part in enumerate(parts)
    )
