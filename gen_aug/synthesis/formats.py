"""Shard writers and readers: zstd Parquet in the Hugging Face Image layout, or an ImageFolder tree of PNGs.

A shard is the images of one contiguous index range. Writers are deterministic (fixed PNG and zstd
levels, no timestamps), so rewriting a shard yields the same bytes, and each returns the shard's
record for the manifest: rows, index range, class counts, bytes and sha256.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gen_aug.errors import GenaugError
from gen_aug.synthesis.plan import Plan, Shard
from gen_aug.synthesis.storage import Location, open_location

FORMATS = ("parquet", "png", "raw")  # raw: uint8 pixels in a fixed-size binary column, no PNG at all
PNG_COMPRESS_LEVEL = 1  # zlib level 1: most of level 6's size at a fraction of its encode time
PARQUET_ZSTD_LEVEL = 3
MAX_PATH_PART_BYTES = 96  # well under every file system's 255-byte name limit, with room for a suffix
_SHARD_FILE = re.compile(r"shard-[0-9]{5,}\.parquet")
_UNSAFE_CHARACTERS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # datasets.Image's storage


def encode_png(images: np.ndarray, latent_indices: np.ndarray | None = None) -> list[bytes]:
    """uint8 (N, C, H, W) with C = 1 (gray) or 3 (RGB) -> one PNG file's bytes per image.

    With `latent_indices`, each PNG carries its own in a `latent_index` text chunk, so a filtered
    image found alone in a folder can still be regenerated.
    """
    from PIL import Image, PngImagePlugin

    channels = images.shape[1]
    if channels not in (1, 3):
        raise GenaugError(f"images with {channels} channels: cannot be PNG (expected 1 or 3 channels)")
    pixels = images[:, 0] if channels == 1 else images.transpose(0, 2, 3, 1)  # (N, H, W[, 3])
    encoded = []
    for row, picture in enumerate(pixels):
        buffer = io.BytesIO()
        options = {}
        if latent_indices is not None:
            options["pnginfo"] = PngImagePlugin.PngInfo()
            options["pnginfo"].add_text("latent_index", str(int(latent_indices[row])))
        Image.fromarray(np.ascontiguousarray(picture)).save(
            buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL, **options
        )
        encoded.append(buffer.getvalue())
    return encoded


def decode_png(data: bytes) -> np.ndarray:
    """One PNG's bytes -> uint8 (C, H, W)."""
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(data)))
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def safe_path_part(name: str) -> str:
    """A class name as one harmless folder name: no separators, NUL, control characters, '.', '..' or overlong names."""
    part = _UNSAFE_CHARACTERS.sub("_", unicodedata.normalize("NFC", name)).strip()
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


def shard_file(shard_idx: int) -> str:
    return f"shard-{shard_idx:05d}.parquet"


def listed_file(shard_idx: int, image_format: str) -> str | None:
    """The one file a manifest record names: the Parquet file, or None for png shards (their files follow from the plan)."""
    return None if image_format == "png" else shard_file(shard_idx)


def is_shard_file(name: str) -> bool:
    return bool(_SHARD_FILE.fullmatch(name))


def png_paths(plan: Plan, shard: Shard) -> list[str]:
    """The files of one png-format shard, in index order: <class folder>/<index>.png."""
    folders = class_dirs(plan.class_names)
    labels = plan.labels(shard.start, shard.stop)
    return [f"{folders[label]}/{index}.png" for index, label in zip(range(shard.start, shard.stop), labels)]


def huggingface_features(class_names: tuple[str, ...], latent_index: bool = False) -> dict:
    features = {
        "image": {"_type": "Image"},
        "label": {"names": list(class_names), "_type": "ClassLabel"},
        "class_name": {"dtype": "string", "_type": "Value"},
        "index": {"dtype": "int64", "_type": "Value"},
        "seed": {"dtype": "int64", "_type": "Value"},
    }
    if latent_index:
        features["latent_index"] = {"dtype": "int64", "_type": "Value"}
    return features


def _row_columns(plan: Plan, shard: Shard, latent_indices: np.ndarray | None) -> dict:
    """Every column but `image`; `latent_index` only for filtered jobs, where it differs from `index`."""
    labels = plan.labels(shard.start, shard.stop)
    columns = {
        "label": pa.array(labels, pa.int64()),
        "class_name": pa.array(np.asarray(plan.class_names, dtype=object)[labels].tolist(), pa.string()),
        "index": pa.array(np.arange(shard.start, shard.stop, dtype=np.int64), pa.int64()),
        "seed": pa.array(np.full(shard.rows, plan.seed, dtype=np.int64), pa.int64()),
    }
    if latent_indices is not None:
        columns["latent_index"] = pa.array(np.asarray(latent_indices, dtype=np.int64), pa.int64())
    return columns


def _parquet_file_bytes(table: pa.Table, rows: int) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", compression_level=PARQUET_ZSTD_LEVEL, row_group_size=rows)
    return sink.getvalue().to_pybytes()


def parquet_bytes(plan: Plan, shard: Shard, pngs: list[bytes], latent_indices: np.ndarray | None = None) -> bytes:
    """One shard as a zstd Parquet file that `datasets` reads as Image + ClassLabel columns."""
    paths = [f"{i}.png" for i in range(shard.start, shard.stop)]
    images = pa.StructArray.from_arrays(
        [pa.array(pngs, pa.binary()), pa.array(paths, pa.string())], fields=list(_IMAGE_TYPE)
    )
    features = huggingface_features(plan.class_names, latent_index=latent_indices is not None)
    metadata = {"huggingface": json.dumps({"info": {"features": features}})}
    table = pa.table({"image": images, **_row_columns(plan, shard, latent_indices)}).replace_schema_metadata(metadata)
    return _parquet_file_bytes(table, shard.rows)


def shard_record(plan: Plan, shard: Shard, sha256: str, num_bytes: int, file: str | None) -> dict:
    """What the manifest says about a shard; `file` is None for the png format, whose files follow from the plan."""
    return {
        "shard_idx": shard.shard_idx,
        "file": file,
        "start": shard.start,
        "stop": shard.stop,
        "rows": shard.rows,
        "class_counts": np.bincount(plan.labels(shard.start, shard.stop), minlength=len(plan.class_names)).tolist(),
        "bytes": num_bytes,
        "sha256": sha256,
    }


def png_digest() -> "hashlib._Hash":
    return hashlib.sha256(b"genaug png shard v1\n")


def add_png_to_digest(digest, relative: str, data: bytes) -> None:
    """The png shard hash covers each file's path and bytes, in index order, lengths included."""
    digest.update(f"{relative}\0{len(data)}\0".encode())
    digest.update(data)


def raw_parquet_bytes(plan: Plan, shard: Shard, images: np.ndarray, latent_indices: np.ndarray | None = None) -> bytes:
    """One shard as zstd Parquet whose `image` column holds each image's uint8 (C, H, W) pixels, C-ordered."""
    image_shape = images.shape[1:]
    pixels = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(int(np.prod(image_shape))), shard.rows, [None, pa.py_buffer(np.ascontiguousarray(images))]
    )
    metadata = {"genaug": json.dumps({"image_shape": list(image_shape), "image_dtype": "uint8",
                                      "class_names": list(plan.class_names)})}
    table = pa.table({"image": pixels, **_row_columns(plan, shard, latent_indices)}).replace_schema_metadata(metadata)
    return _parquet_file_bytes(table, shard.rows)


def write_shard(
    location: Location, plan: Plan, shard: Shard, images: np.ndarray, image_format: str,
    latent_indices: np.ndarray | None = None,
) -> dict:
    """Encode one shard's uint8 (N, C, H, W) images and write them atomically; returns its manifest record.

    `latent_indices` (filtered jobs only): the latent each image was drawn from, stored beside it.
    """
    if image_format in ("parquet", "raw"):
        if image_format == "parquet":
            data = parquet_bytes(plan, shard, encode_png(images), latent_indices)
        else:
            data = raw_parquet_bytes(plan, shard, images, latent_indices)
        location.write_atomic(shard_file(shard.shard_idx), data)
        return shard_record(plan, shard, hashlib.sha256(data).hexdigest(), len(data), shard_file(shard.shard_idx))
    digest = png_digest()
    pngs = encode_png(images, latent_indices)
    for relative, data in zip(png_paths(plan, shard), pngs):
        location.write_atomic(relative, data)
        add_png_to_digest(digest, relative, data)
    return shard_record(plan, shard, digest.hexdigest(), sum(map(len, pngs)), None)


_OPENED: dict[tuple[str, str], tuple[Location, Plan]] = {}  # per encoder process: reopened once, not per shard


def write_shard_in_encoder(
    out_uri: str, plan_json: str, shard_idx: int, images: np.ndarray, image_format: str,
    latent_indices: np.ndarray | None = None,
) -> dict:
    """`write_shard` for an encoder thread or process, which gets only picklable arguments."""
    key = (out_uri, plan_json)
    if key not in _OPENED:
        _OPENED.clear()
        _OPENED[key] = (open_location(out_uri), Plan.from_dict(json.loads(plan_json)))
    location, plan = _OPENED[key]
    return write_shard(location, plan, plan.shard(shard_idx), images, image_format, latent_indices)


def hash_shard(location: Location, plan: Plan, record: dict, image_format: str) -> tuple[str, int]:
    """Re-read a written shard: (sha256, bytes), computed exactly as its writer did."""
    shard = plan.shard(record["shard_idx"])
    if image_format != "png":
        data = location.read(shard_file(shard.shard_idx))
        return hashlib.sha256(data).hexdigest(), len(data)
    digest, num_bytes = png_digest(), 0
    for relative in png_paths(plan, shard):
        data = location.read(relative)
        add_png_to_digest(digest, relative, data)
        num_bytes += len(data)
    return digest.hexdigest(), num_bytes


def shard_files(plan: Plan, shard: Shard, image_format: str) -> list[str]:
    return png_paths(plan, shard) if image_format == "png" else [shard_file(shard.shard_idx)]


def read_shard(location: Location, plan: Plan, shard: Shard, image_format: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, C, H, W), int64 labels) of one shard, in index order."""
    if image_format != "png":
        return decode_parquet_shard(location.read(shard_file(shard.shard_idx)), shard, image_format)
    pngs = [location.read(relative) for relative in png_paths(plan, shard)]
    return np.stack([decode_png(data) for data in pngs]), plan.labels(shard.start, shard.stop).astype(np.int64)


def decode_parquet_shard(data: bytes, shard: Shard, image_format: str) -> tuple[np.ndarray, np.ndarray]:
    """A parquet or raw shard file's bytes -> (uint8 images (N, C, H, W), int64 labels)."""
    table = pq.read_table(pa.BufferReader(data), columns=["image", "label"])
    labels = table.column("label").to_numpy().astype(np.int64)
    if image_format == "parquet":
        return np.stack([decode_png(item["bytes"]) for item in table.column("image").to_pylist()]), labels
    image_shape = json.loads(table.schema.metadata[b"genaug"])["image_shape"]
    pixels = np.frombuffer(table.column("image").combine_chunks().buffers()[1], dtype=np.uint8)
    return pixels[: shard.rows * int(np.prod(image_shape))].reshape(shard.rows, *image_shape).copy(), labels


def __getattr__(name: str):
    # The reader checks shards against the manifest, and manifest.py imports this module: load it on first use.
    if name in ("SyntheticImages", "load_synthetic"):
        from gen_aug.synthesis import reader

        return getattr(reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
