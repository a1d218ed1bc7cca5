"""Shard writers: deterministic bytes, the Hugging Face Parquet layout, safe PNG folders, atomic writes.

Guards: gen_aug/output/formats.py, gen_aug/output/encoding.py, gen_aug/output/storage.py,
    gen_aug/output/records.py
"""

import hashlib
import json
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gen_aug.errors import GenaugError
from gen_aug.output.encoding import decode_png, encode_png, png_parquet_bytes
from gen_aug.output.formats import FORMATS, MAX_PATH_PART_BYTES, class_dirs, read_shard, safe_path_part, write_shard
from gen_aug.output.plan import make_plan
from gen_aug.output.storage import TEMP_PREFIX, open_location

NAMES = ("cat", "dog", "owl")


def images_for(count: int, channels: int = 1, size: int = 8) -> np.ndarray:
    return np.random.default_rng(count).integers(0, 256, (count, channels, size, size), dtype=np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
def test_png_round_trip_and_repeatable_bytes(channels):
    images = images_for(5, channels)
    encoded = encode_png(images)
    assert encoded == encode_png(images)
    assert all(data.startswith(b"\x89PNG") for data in encoded)
    assert np.array_equal(np.stack([decode_png(data) for data in encoded]), images)


def test_png_needs_gray_or_rgb():
    with pytest.raises(GenaugError, match="2 channels"):
        encode_png(images_for(1, channels=2))


@pytest.mark.parametrize(
    "name",
    ["..", ".", "a/../../b", "/etc/passwd", "nul\x00byte", "back\\slash", "", "  ", ".hidden", "x" * 500, "é" * 200],
)
def test_class_names_become_one_harmless_path_part(name):
    part = safe_path_part(name)
    assert part and part not in (".", "..") and not part.startswith(".")
    assert not any(c in part for c in "/\\\x00")
    assert len(part.encode()) <= MAX_PATH_PART_BYTES


def test_class_folders_avoid_every_name_genaug_writes_at_the_root():
    from gen_aug.output.card import CARD
    from gen_aug.output.formats import DATA_DIR, RESERVED_ROOT_NAMES
    from gen_aug.output.manifest import MANIFEST_NAMES, STATE_DIR

    written = {name.lower() for name in (*MANIFEST_NAMES, CARD, STATE_DIR, DATA_DIR)}
    assert written <= set(RESERVED_ROOT_NAMES)
    for name in (*MANIFEST_NAMES, CARD, STATE_DIR, DATA_DIR, "ReadMe.md", "DATA"):
        assert safe_path_part(name).lower() not in written


def test_class_folders_drop_invisible_format_characters():
    # U+202E (right-to-left override) shows 'cat\u202egnp.exe' as 'catexe.png'.
    part = safe_path_part("cat\u202egnp.exe\u200b")
    assert part == "cat_gnp.exe_" and not any(unicodedata.category(c) == "Cf" for c in part)


def test_class_folders_stay_distinct():
    assert class_dirs(("3", "cat", "dog")) == ("3", "cat", "dog")
    folders = class_dirs(("a/b", "a_b", "x" * 300, "x" * 300 + "y"))
    assert len(set(folders)) == 4


def test_parquet_shard_is_repeatable_and_huggingface_shaped(tmp_path):
    plan = make_plan(NAMES, n=50, shard_size=20, seed=4)
    shard = plan.shard(1)
    pngs = encode_png(images_for(shard.rows))
    data = png_parquet_bytes(plan, shard, pngs)
    assert data == png_parquet_bytes(plan, shard, pngs)
    (tmp_path / "s.parquet").write_bytes(data)
    table = pq.read_table(tmp_path / "s.parquet")
    assert table.column_names == ["image", "label", "class_name", "index", "seed"]
    assert table.column("index").to_pylist() == list(range(20, 40))
    assert table.column("label").to_pylist() == plan.labels(20, 40).tolist()
    assert table.column("class_name").to_pylist() == [NAMES[label] for label in plan.labels(20, 40)]
    assert set(table.column("seed").to_pylist()) == {4}
    assert table.column("image").to_pylist()[0] == {"bytes": pngs[0], "path": "20.png"}
    features = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]
    assert features["image"] == {"_type": "Image"} and features["label"]["names"] == list(NAMES)
    assert pq.ParquetFile(tmp_path / "s.parquet").metadata.row_group(0).column(0).compression == "ZSTD"


def test_huggingface_datasets_reads_images_and_class_names(tmp_path):
    datasets = pytest.importorskip("datasets")
    plan = make_plan(NAMES, n=12, shard_size=12)
    images = images_for(12)
    write_shard(open_location(str(tmp_path / "out")), plan, plan.shard(0), images, FORMATS["parquet"])
    loaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "out" / "data" / "*.parquet"), split="train",
                                   cache_dir=str(tmp_path / "cache"))
    assert isinstance(loaded.features["image"], datasets.Image)
    assert isinstance(loaded.features["label"], datasets.ClassLabel)
    assert loaded.features["label"].names == list(NAMES)
    first = loaded[0]
    assert np.array_equal(np.asarray(first["image"]), images[0, 0])
    assert first["class_name"] == NAMES[first["label"]]


@pytest.mark.parametrize("image_format", ["parquet", "png", "raw"])
def test_written_shards_hash_as_recorded_and_read_back(tmp_path, image_format):
    plan = make_plan(("a/b", "..", "c"), n=30, shard_size=10)
    location = open_location(str(tmp_path / "out"))
    shard = plan.shard(2)
    images = images_for(10)
    shard_format = FORMATS[image_format]
    record = write_shard(location, plan, shard, images, shard_format)
    assert (record.start, record.stop, record.rows) == (20, 30, 10)
    assert list(record.class_counts) == np.bincount(plan.labels(20, 30), minlength=3).tolist()
    contents, sha256, num_bytes = read_shard(location, plan, shard, shard_format)
    assert (sha256, num_bytes) == (record.sha256, record.bytes)
    got_images, got_labels = shard_format.decode(plan, shard, contents)
    assert np.array_equal(got_images, images) and np.array_equal(got_labels, plan.labels(20, 30))
    files = location.list_files()
    assert not any(TEMP_PREFIX in f for f in files)
    if image_format in ("parquet", "raw"):
        assert files == ["data/train-00002-of-00003.parquet"]
        assert record.sha256 == hashlib.sha256((tmp_path / "out" / files[0]).read_bytes()).hexdigest()
    else:
        assert files == sorted(shard_format.files(plan, shard))
        assert all(f.split("/")[0] in ("a_b", "_..", "c") for f in files)


def test_atomic_writes_leave_only_whole_files_and_temporaries_are_swept(tmp_path):
    location = open_location(str(tmp_path))
    location.write_atomic("a/b.bin", b"one")
    location.write_atomic("a/b.bin", b"two")
    (tmp_path / "a" / f"{TEMP_PREFIX}dead-b.bin").write_bytes(b"partial")
    assert location.read("a/b.bin") == b"two"
    assert location.sweep_temporaries() == 1
    assert location.list_files() == ["a/b.bin"]


def test_an_output_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(GenaugError, match="is a file"):
        open_location(str(tmp_path / "file"))


def test_raw_shard_holds_pixels_that_numpy_reads_directly(tmp_path):
    plan = make_plan(NAMES, n=6, shard_size=6, seed=2)
    images = np.random.default_rng(0).integers(0, 256, (6, 3, 5, 5), dtype=np.uint8)
    write_shard(open_location(str(tmp_path)), plan, plan.shard(0), images, FORMATS["raw"])
    table = pq.read_table(tmp_path / "data/train-00000-of-00001.parquet")
    shape = json.loads(table.schema.metadata[b"genaug"])["image_shape"]
    assert shape == [3, 5, 5] and table.schema.field("image").type == pa.binary(75)
    pixels = np.frombuffer(b"".join(table.column("image").to_pylist()), np.uint8).reshape(6, *shape)
    assert np.array_equal(pixels, images)
    assert table.column("label").to_pylist() == plan.labels(0, 6).tolist()
    assert pq.ParquetFile(tmp_path / "data/train-00000-of-00001.parquet").metadata.row_group(0).column(0).compression == "ZSTD"
