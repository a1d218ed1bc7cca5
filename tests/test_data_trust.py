"""npz and idx files that lie or are broken, each written for real: one `Error:` line naming the file, no traceback.

The readers must trust no size a header declares, so some files here declare gigabytes or terabytes
in a few bytes; tracemalloc checks that reading them allocates about what the file really holds.

Guards: gen_aug/data/sources.py
"""

import gzip
import io
import os
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from numpy.lib import format as npy_format

from gen_aug.cli import main
from gen_aug.data import load_data
from gen_aug.errors import GenaugError

LABELS = np.array([0, 1, 0, 1])
IMAGES = np.zeros((4, 8, 8), np.uint8)


def idx_header(num_dims: int, *dims: int, type_byte: int = 0x08) -> bytes:
    return bytes([0, 0, type_byte, num_dims]) + b"".join(d.to_bytes(4, "big") for d in dims)


def write_idx_pair(folder: Path, images: bytes, labels: bytes, gz: bool = False) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    suffix, pack = (".gz", gzip.compress) if gz else ("", bytes)
    (folder / f"t10k-images-idx3-ubyte{suffix}").write_bytes(pack(images))
    (folder / f"t10k-labels-idx1-ubyte{suffix}").write_bytes(pack(labels))
    return f"idx:{folder}"


def good_images(count: int = 4) -> bytes:
    return idx_header(3, count, 2, 2) + bytes(4 * count)


def good_labels(values=(0, 1, 0, 1)) -> bytes:
    return idx_header(1, len(values)) + bytes(values)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)  # the tests' own writer may pickle; the reader must refuse it
    return buffer.getvalue()


def lying_npy(shape: tuple[int, ...], body: bytes) -> bytes:
    """A uint8 .npy member whose header declares `shape` but whose body is `body`."""
    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + body


def write_zip(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return f"npz:{path}"


def claim_size(path: Path, size: int) -> None:
    """Edit a zip so the local and central headers of its first member both claim `size` bytes uncompressed."""
    raw = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = raw.index(signature) + offset
        raw[at : at + 4] = struct.pack("<I", size)
    path.write_bytes(bytes(raw))


class Unpickled:
    """An object whose unpickling makes a folder: proof, if the folder appears, that a reader unpickled it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


# --- the bad files: each writes its file(s) under tmp_path and returns the spec ---------------------


def npz_object_images(tmp: Path) -> str:
    images = np.array([Unpickled(tmp / "unpickled")] * 4, dtype=object)
    np.savez(tmp / "obj.npz", train_images=images, train_labels=LABELS)
    return f"npz:{tmp}/obj.npz"


def npz_object_labels(tmp: Path) -> str:
    np.savez(tmp / "obj.npz", train_images=IMAGES, train_labels=np.array([0, 1, None, 1], dtype=object))
    return f"npz:{tmp}/obj.npz"


def npz_not_a_zip(tmp: Path) -> str:
    (tmp / "text.npz").write_text("hello, not a zip")
    return f"npz:{tmp}/text.npz"


def npz_truncated(tmp: Path) -> str:
    np.savez(tmp / "full.npz", train_images=IMAGES, train_labels=LABELS)
    (tmp / "cut.npz").write_bytes((tmp / "full.npz").read_bytes()[:-40])
    return f"npz:{tmp}/cut.npz"


def npz_with(**arrays):
    def make(tmp: Path) -> str:
        np.savez(tmp / "set.npz", **{"train_images": IMAGES, "train_labels": LABELS, **arrays})
        return f"npz:{tmp}/set.npz"

    return make


def npz_header_lies_about_shape(tmp: Path) -> str:
    members = {"train_images.npy": lying_npy((2**31, 28, 28), bytes(256)), "train_labels.npy": npy_bytes(LABELS)}
    return write_zip(tmp / "lie.npz", members)


def npz_zip_and_header_lie_together(tmp: Path) -> str:
    """A 4 GB member by both its .npy header and its zip entry, in a file of a few hundred bytes."""
    declared = (4000, 1000, 1000)
    member = lying_npy(declared, bytes(16))
    write_zip(tmp / "lie.npz", {"train_images.npy": member, "train_labels.npy": npy_bytes(LABELS)})
    claim_size(tmp / "lie.npz", len(member) - 16 + 4000 * 1000 * 1000)
    return f"npz:{tmp}/lie.npz"


def npz_bad_crc(tmp: Path) -> str:
    write_zip(tmp / "crc.npz", {"train_images.npy": npy_bytes(IMAGES + 1), "train_labels.npy": npy_bytes(LABELS)})
    raw = bytearray((tmp / "crc.npz").read_bytes())
    raw[raw.index(bytes([1] * 64))] = 7  # one pixel changed, the stored checksum not
    (tmp / "crc.npz").write_bytes(bytes(raw))
    return f"npz:{tmp}/crc.npz"


def npz_member_not_npy(tmp: Path) -> str:
    return write_zip(tmp / "odd.npz", {"train_images.npy": b"garbage", "train_labels.npy": npy_bytes(LABELS)})


def idx_pair(images: bytes, labels: bytes = good_labels(), gz: bool = False):
    return lambda tmp: write_idx_pair(tmp / "m", images, labels, gz)


def idx_not_gzip(tmp: Path) -> str:
    (tmp / "m").mkdir()
    (tmp / "m" / "t10k-images-idx3-ubyte.gz").write_bytes(good_images())  # named .gz, not compressed
    (tmp / "m" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(good_labels()))
    return f"idx:{tmp}/m"


def idx_gzip_cut(tmp: Path) -> str:
    spec = write_idx_pair(tmp / "m", good_images(), good_labels(), gz=True)
    path = tmp / "m" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    return spec


def idx_gzip_bad_crc(tmp: Path) -> str:
    spec = write_idx_pair(tmp / "m", good_images(), good_labels(), gz=True)
    path = tmp / "m" / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[-6] ^= 0xFF  # the stored CRC-32
    path.write_bytes(bytes(raw))
    return spec


# case: (writer, file name the error must name, what it must say)
BAD_FILES = {
    "npz object images": (npz_object_images, "obj.npz", "'train_images' is an array of object"),
    "npz object labels": (npz_object_labels, "obj.npz", "'train_labels' is an array of object"),
    "npz not a zip": (npz_not_a_zip, "text.npz", "not a readable .npz file (BadZipFile"),
    "npz truncated": (npz_truncated, "cut.npz", "not a readable .npz file"),
    "npz float64 images": (npz_with(train_images=np.zeros((4, 8, 8))), "set.npz",
                           "train_images is float64 (expected uint8; genaug neither clips nor rescales"),
    "npz int64 images": (npz_with(train_images=np.full((4, 8, 8), 300)), "set.npz",
                         "train_images is int64 (expected uint8"),
    "npz 2-d images": (npz_with(train_images=np.zeros((4, 8), np.uint8)), "set.npz",
                       "train_images has shape (4, 8) (expected N x H x W or N x H x W x 3"),
    "npz 5-d images": (npz_with(train_images=np.zeros((4, 8, 8, 3, 1), np.uint8)), "set.npz",
                       "has shape (4, 8, 8, 3, 1)"),
    "npz channels first": (npz_with(train_images=np.zeros((4, 3, 8, 8), np.uint8)), "set.npz",
                           "has shape (4, 3, 8, 8)"),
    "npz no images": (npz_with(train_images=np.zeros((0, 8, 8), np.uint8), train_labels=np.zeros(0, int)), "set.npz",
                      "has shape (0, 8, 8) (expected N x H x W or N x H x W x 3, each 1 or more)"),
    "npz fewer labels": (npz_with(train_labels=LABELS[:3]), "set.npz", "train_labels has 3 entries for 4 images"),
    "npz negative label": (npz_with(train_labels=np.array([0, -1, 0, 1])), "set.npz",
                           "train_labels holds label -1 (expected class indices 0 to K-1"),
    "npz float labels": (npz_with(train_labels=LABELS.astype(float)), "set.npz",
                         "train_labels is float64 (4,) (expected integer class indices"),
    "npz huge label": (npz_with(train_labels=np.array([0, 2**40, 0, 1])), "set.npz",
                       "holds label 1099511627776 (expected class indices 0 to K-1 for K classes, K at most the 4"),
    "npz uint64 label past int64": (npz_with(train_labels=np.array([0, 2**63, 0, 1], np.uint64)), "set.npz",
                                    "holds label 9223372036854775808"),
    "npz labels from 1": (npz_with(train_labels=np.array([1, 2, 1, 2])), "set.npz",
                          "no image has label 0, though labels go up to 2"),
    "npz header lies": (npz_header_lies_about_shape, "lie.npz",
                        "'train_images' declares uint8 (2147483648, 28, 28), 1,683,627,180,032 bytes, but holds 256"),
    "npz zip entry lies too": (npz_zip_and_header_lie_together, "lie.npz",
                               "'train_images' is truncated (16 of 4,000,000,000 bytes)"),
    "npz bad crc": (npz_bad_crc, "crc.npz", "'train_images' is not a readable .npy array (BadZipFile: Bad CRC-32"),
    "npz member not npy": (npz_member_not_npy, "odd.npz", "'train_images' is not a readable .npy array"),
    "idx 2**31 images in 100 bytes": (idx_pair(idx_header(3, 2**31, 28, 28) + bytes(84)), "'t10k-images-idx3-ubyte'",
                                      "is truncated: the header declares 2147483648 x 28 x 28, "
                                      "1,683,627,180,032 bytes, and 84 follow"),
    "idx largest sizes": (idx_pair(idx_header(3, 2**32 - 1, 2**32 - 1, 2**32 - 1) + bytes(84)),
                          "'t10k-images-idx3-ubyte'", "is truncated: the header declares 4294967295 x 4294967295"),
    "idx gz 2**31 images": (idx_pair(idx_header(3, 2**31, 28, 28) + bytes(84), gz=True), "'t10k-images-idx3-ubyte.gz'",
                            "declares 2147483648 x 28 x 28, 1,683,627,180,032 bytes (expected at most 4 GiB"),
    # a gzip's size says nothing of what it holds: 5 GB of zeros is a 5 MB file
    "idx gz 5 GB": (idx_pair(idx_header(3, 5000, 1000, 1000) + bytes(84), gz=True), "'t10k-images-idx3-ubyte.gz'",
                    "declares 5000 x 1000 x 1000, 5,000,000,000 bytes (expected at most 4 GiB: genaug holds a data "
                    "set in memory"),
    "idx zero images": (idx_pair(idx_header(3, 0, 2, 2), idx_header(1, 0)), "'t10k-images-idx3-ubyte'",
                        "declares sizes (0, 2, 2) (expected 1 or more of each)"),
    "idx zero rows": (idx_pair(idx_header(3, 4, 0, 2)), "'t10k-images-idx3-ubyte'", "declares sizes (4, 0, 2)"),
    "idx wrong type byte": (idx_pair(idx_header(3, 4, 2, 2, type_byte=0x0D) + bytes(64)), "'t10k-images-idx3-ubyte'",
                            "starts with 00 00 0d 03 (expected an IDX file of uint8 with 3 dimension(s): "
                            "magic 00 00 08 03)"),
    "idx labels as images": (idx_pair(good_labels()), "'t10k-images-idx3-ubyte'", "starts with 00 00 08 01"),
    "idx empty file": (idx_pair(b""), "'t10k-images-idx3-ubyte'", "starts with nothing"),
    "idx cut header": (idx_pair(good_images()[:10]), "'t10k-images-idx3-ubyte'", "ends inside its header"),
    "idx truncated body": (idx_pair(good_images()[:-3]), "'t10k-images-idx3-ubyte'",
                           "is truncated: the header declares 4 x 2 x 2, 16 bytes, and 13 follow"),
    "idx longer body": (idx_pair(good_images() + b"\0"), "'t10k-images-idx3-ubyte'", "is longer than its header says"),
    "idx gz longer body": (idx_pair(good_images() + b"\0", gz=True), "'t10k-images-idx3-ubyte.gz'",
                           "is longer than its header says"),
    "idx counts differ": (idx_pair(good_images(5)), "'t10k-images-idx3-ubyte' has 5 images",
                          "but 't10k-labels-idx1-ubyte' has 4 labels (expected one label per image)"),
    "idx label past images": (idx_pair(good_images(), good_labels((0, 1, 0, 200))), "'t10k-labels-idx1-ubyte'",
                              "holds label 200"),
    "idx labels from 1": (idx_pair(good_images(), good_labels((1, 2, 1, 2))), "idx:", "no image has label 0"),
    "idx gz not gzip": (idx_not_gzip, "'t10k-images-idx3-ubyte.gz'",
                        "(BadGzipFile: Not a gzipped file (b'\\x00\\x00'); expected a gzip-compressed IDX file"),
    "idx gz cut": (idx_gzip_cut, "'t10k-images-idx3-ubyte.gz'", "cannot read"),
    "idx gz bad crc": (idx_gzip_bad_crc, "'t10k-images-idx3-ubyte.gz'", "CRC check failed"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_one_error_line_naming_it(tmp_path, case):
    make, names, why = BAD_FILES[case]
    spec = make(tmp_path)
    tracemalloc.start()
    try:
        result = CliRunner().invoke(main, ["data", spec])
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (result.output, result.exception)
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: data {spec}: "), result.output
    assert names in lines[0] and why in lines[0], lines[0]
    assert peak_bytes < 32 * 2**20  # files of a few hundred bytes, whatever their headers declare
    assert not (tmp_path / "unpickled").exists()


def test_a_pickled_npz_is_refused_without_unpickling(tmp_path):
    spec = npz_object_images(tmp_path)
    with pytest.raises(GenaugError, match="'train_images' is an array of object"):
        load_data(spec)
    assert not (tmp_path / "unpickled").exists()
    np.load(tmp_path / "obj.npz", allow_pickle=True)["train_images"]  # the file's payload is real
    assert (tmp_path / "unpickled").is_dir()


def test_a_file_name_with_a_newline_stays_on_one_line(tmp_path):
    path = tmp_path / "a\nb.npz"
    path.write_text("not a zip")
    result = CliRunner().invoke(main, ["data", f"npz:{path}"])
    assert result.exit_code == 1 and len(result.output.splitlines()) == 1, result.output
    assert f"Error: data npz:{str(path)!r}: not a readable .npz file" in result.output


# --- what the readers still take ------------------------------------------------------------------


def test_fortran_order_compressed_npz_with_big_endian_labels_loads(tmp_path):
    images = np.asfortranarray(np.arange(4 * 3 * 2, dtype=np.uint8).reshape(4, 3, 2))
    np.savez_compressed(tmp_path / "set.npz", train_images=images, train_labels=np.array([0, 1, 0, 1], ">i8"))
    data = load_data(f"npz:{tmp_path}/set.npz")
    assert (data.images[:, 0] == images).all() and data.labels.tolist() == [0, 1, 0, 1]


def test_uint64_labels_become_int64(tmp_path):
    np.savez(tmp_path / "set.npz", train_images=IMAGES, train_labels=np.array([[0], [1], [0], [1]], np.uint64))
    data = load_data(f"npz:{tmp_path}/set.npz?limit_per_class=2")
    assert data.labels.dtype == np.int64 and data.labels.tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize("gz", [False, True])
def test_idx_pixels_and_labels_come_through_in_order(tmp_path, gz):
    pixels = bytes(range(5 * 2 * 2))
    spec = write_idx_pair(tmp_path / "m", idx_header(3, 5, 2, 2) + pixels, good_labels((0, 1, 2, 1, 0)), gz=gz)
    data = load_data(f"{spec}?split=train")
    assert data.images.tobytes() == pixels and data.labels.tolist() == [0, 1, 2, 1, 0]
