"""Deterministic bytes of uint8 images: PNG files, and Parquet tables in the Hugging Face Image layout or as raw pixels.

Fixed PNG and zstd levels and no timestamps, so encoding a shard again yields the same bytes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gen_aug.data.form import SourceForm
from gen_aug.errors import GenaugError
from gen_aug.output.plan import Plan, Shard

PNG_COMPRESS_LEVEL = 1  # zlib level 1: most of level 6's size at a fraction of its encode time
PARQUET_ZSTD_LEVEL = 3
_IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # datasets.Image's storage
_FEATURE_DTYPES = {pa.int64(): "int64", pa.float64(): "float64", pa.string(): "string"}  # datasets.Value's names


def encode_png(images: np.ndarray, columns: Mapping[str, np.ndarray] | None = None,
               restore: SourceForm | None = None) -> list[bytes]:
    """uint8 (N, C, H, W) with C = 1 (gray) or 3 (RGB) -> one PNG file's bytes per image; with `restore`, each
    image back at its source's size and depth (16-bit gray PNGs for 16-bit sources).

    With `columns` (a job's extra per-row values: a filtered image's `latent_index`, a variant's
    source), each PNG carries its own row's in text chunks, so an image found alone in a folder
    still says where it came from.
    """
    from PIL import Image, PngImagePlugin

    channels = images.shape[1]
    if channels not in (1, 3):
        raise GenaugError(f"images with {channels} channels: cannot be PNG (expected 1 or 3 channels)")
    if restore is not None:
        pixels = [restore.restored(image) for image in images]
    else:
        pixels = images[:, 0] if channels == 1 else images.transpose(0, 2, 3, 1)  # (N, H, W[, 3])
    encoded = []
    for row, picture in enumerate(pixels):
        buffer = io.BytesIO()
        options = {}
        if columns:
            options["pnginfo"] = PngImagePlugin.PngInfo()
            for name, values in columns.items():
                options["pnginfo"].add_text(name, str(values[row]))
        Image.fromarray(np.ascontiguousarray(picture)).save(
            buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL, **options
        )
        encoded.append(buffer.getvalue())
    return encoded


def decode_png(data: bytes) -> np.ndarray:
    """One PNG's bytes -> (C, H, W): uint8, or uint16 for a 16-bit PNG of a --restore job."""
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(data)))
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def huggingface_features(class_names: tuple[str, ...], extra: Mapping[str, str] | None = None) -> dict:
    """The `datasets` features of a shard's columns; `extra` names a job's extra columns and their dtypes."""
    features = {
        "image": {"_type": "Image"},
        "label": {"names": list(class_names), "_type": "ClassLabel"},
        "class_name": {"dtype": "string", "_type": "Value"},
        "index": {"dtype": "int64", "_type": "Value"},
        "seed": {"dtype": "int64", "_type": "Value"},
    }
    for name, dtype in (extra or {}).items():
        features[name] = {"dtype": dtype, "_type": "Value"}
    return features


def column_dtypes(columns: Mapping[str, np.ndarray] | None) -> dict[str, str]:
    """Each extra column's `datasets` dtype: int64, float64 or string."""
    return {name: _FEATURE_DTYPES[_arrow_type(values)] for name, values in (columns or {}).items()}


def _arrow_type(values: np.ndarray) -> pa.DataType:
    """int64, float64 or string: the types extra columns come in."""
    kind = np.asarray(values).dtype.kind
    return pa.int64() if kind in "iu" else pa.float64() if kind == "f" else pa.string()


def _row_columns(plan: Plan, shard: Shard, extra: Mapping[str, np.ndarray] | None) -> dict:
    """Every column but `image`: the plan's, then the job's extra ones (a filtered image's `latent_index`, which
    differs from its `index`; a variant's source)."""
    labels = plan.labels(shard.start, shard.stop)
    planned = {
        "label": pa.array(labels, pa.int64()),
        "class_name": pa.array(np.asarray(plan.class_names, dtype=object)[labels].tolist(), pa.string()),
        "index": pa.array(np.arange(shard.start, shard.stop, dtype=np.int64), pa.int64()),
        "seed": pa.array(np.full(shard.rows, plan.seed, dtype=np.int64), pa.int64()),
    }
    for name, values in (extra or {}).items():
        planned[name] = pa.array(np.asarray(values).tolist(), _arrow_type(values))
    return planned


def _parquet_file_bytes(table: pa.Table, rows: int) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", compression_level=PARQUET_ZSTD_LEVEL, row_group_size=rows)
    return sink.getvalue().to_pybytes()


def png_parquet_bytes(plan: Plan, shard: Shard, pngs: list[bytes],
                      columns: Mapping[str, np.ndarray] | None = None) -> bytes:
    """One shard as a zstd Parquet file that `datasets` reads as Image + ClassLabel columns."""
    paths = [f"{i}.png" for i in range(shard.start, shard.stop)]
    images = pa.StructArray.from_arrays(
        [pa.array(pngs, pa.binary()), pa.array(paths, pa.string())], fields=list(_IMAGE_TYPE)
    )
    features = huggingface_features(plan.class_names, column_dtypes(columns))
    metadata = {"huggingface": json.dumps({"info": {"features": features}})}
    table = pa.table({"image": images, **_row_columns(plan, shard, columns)}).replace_schema_metadata(metadata)
    return _parquet_file_bytes(table, shard.rows)


def raw_parquet_bytes(plan: Plan, shard: Shard, images: np.ndarray,
                      columns: Mapping[str, np.ndarray] | None = None) -> bytes:
    """One shard as zstd Parquet whose `image` column holds each image's uint8 (C, H, W) pixels, C-ordered."""
    image_shape = images.shape[1:]
    pixels = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(int(np.prod(image_shape))), shard.rows, [None, pa.py_buffer(np.ascontiguousarray(images))]
    )
    metadata = {"genaug": json.dumps({"image_shape": list(image_shape), "image_dtype": "uint8",
                                      "class_names": list(plan.class_names)})}
    table = pa.table({"image": pixels, **_row_columns(plan, shard, columns)}).replace_schema_metadata(metadata)
    return _parquet_file_bytes(table, shard.rows)


def decode_png_parquet(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """A parquet shard file's bytes -> (uint8 images (N, C, H, W), int64 labels)."""
    table = pq.read_table(pa.BufferReader(data), columns=["image", "label"])
    images = np.stack([decode_png(item["bytes"]) for item in table.column("image").to_pylist()])
    return images, table.column("label").to_numpy().astype(np.int64)


def decode_raw_parquet(data: bytes, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A raw shard file's bytes -> (uint8 images (N, C, H, W), int64 labels)."""
    table = pq.read_table(pa.BufferReader(data), columns=["image", "label"])
    image_shape = json.loads(table.schema.metadata[b"genaug"])["image_shape"]
    pixels = np.frombuffer(table.column("image").combine_chunks().buffers()[1], dtype=np.uint8)
    images = pixels[: rows * int(np.prod(image_shape))].reshape(rows, *image_shape).copy()
    return images, table.column("label").to_numpy().astype(np.int64)


def decode_parquet_columns(data: bytes, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Columns `names` of a parquet or raw shard file's bytes."""
    table = pq.read_table(pa.BufferReader(data), columns=list(names))
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in names}


def decode_png_columns(contents: list[bytes], names: tuple[str, ...], types: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Columns `names` from the text chunks of a shard's PNG files, as `types` (datasets dtypes) say."""
    from PIL import Image

    texts = [Image.open(io.BytesIO(data)).text for data in contents]
    dtypes = {"int64": np.int64, "float64": np.float64, "string": object}
    return {name: np.array([text[name] for text in texts]).astype(dtypes[types[name]]) for name in names}
