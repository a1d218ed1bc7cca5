"""Readers for each kind of data source; each returns uint8 (N, C, H, W) images in file order (folders: folder.py).

The npz and idx readers trust no size a file declares: each is checked against the bytes really there
before anything of that size is allocated, and .npz members are parsed here, never unpickled.
"""

from __future__ import annotations

import gzip
import lzma
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from gen_aug.data.raw import RawImages
from gen_aug.data.spec import DataSpec
from gen_aug.errors import GenaugError

BUILTIN_SETS = ("digits",)
NPZ_SPLITS = ("train", "val", "test")
IDX_UINT8 = 0x08  # the IDX type byte for unsigned bytes, the only type MNIST files use
READ_CHUNK_BYTES = 1 << 20
# genaug holds every image of a data set in memory: an array declared larger than this is refused before a
# byte of it is read (a 5 MB gzip can honestly hold 5 GB of zeros).
MAX_ARRAY_BYTES = 4 * 2**30
# What a broken zip, gzip or .npy member raises while it is read: each means 'not the file it claims to be'.
UNREADABLE = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError, NotImplementedError,
              RuntimeError)


def read(spec: DataSpec) -> RawImages:
    if spec.kind == "builtin":
        return read_builtin(spec.path)
    if not Path(spec.path).exists():
        raise GenaugError(f"data {_label(spec.kind, Path(spec.path))}: no such file or folder")
    if spec.kind == "folder":
        from gen_aug.data.folder import read_folder  # Pillow only for the kind that needs it

        return read_folder(spec)
    return {"npz": read_npz, "idx": read_idx}[spec.kind](Path(spec.path))


def read_builtin(name: str) -> RawImages:
    if name not in BUILTIN_SETS:
        raise GenaugError(f"data builtin:{name}: unknown built-in set (expected one of {', '.join(BUILTIN_SETS)})")
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 17 grey levels 0..16 (ink is high) -> 0..255, so images look like MNIST: white ink on black.
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)[:, None]
    return RawImages(images, digits.target.astype(np.int64), tuple(str(i) for i in range(10)))


def _label(kind: str, path: Path) -> str:
    """The source as the user named it; repr only where a raw name would break the one error line."""
    return f"{kind}:{path}" if str(path).isprintable() else f"{kind}:{str(path)!r}"


# --- npz: the MedMNIST layout ---------------------------------------------------------------------


def read_npz(path: Path) -> RawImages:
    """The MedMNIST layout: {train,val,test}_{images,labels}; uint8 images N x H x W (x 3), labels N (x 1)."""
    label = _label("npz", path)
    try:
        archive = zipfile.ZipFile(path)
    except UNREADABLE as error:
        raise GenaugError(
            f"data {label}: not a readable .npz file ({_reason(error)}; expected a zip of .npy arrays, "
            "as numpy.savez writes)"
        ) from None
    with archive:
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        splits = {}
        for split in NPZ_SPLITS:
            names = (f"{split}_images", f"{split}_labels")
            if not any(name in members for name in names):
                continue
            if not all(name in members for name in names):
                present, absent = names if names[0] in members else names[::-1]
                raise GenaugError(f"data {label}: has {present} but no {absent} (expected both, or neither)")
            images = _npz_images(label, split, _npy_member(label, archive, members[names[0]]))
            labels = _npz_labels(label, split, _npy_member(label, archive, members[names[1]]), len(images))
            splits[split] = (images, labels)
    if not splits:
        raise GenaugError(
            f"data {label}: no train_images/train_labels (or val_*, test_*) arrays; "
            f"found {', '.join(repr(name) for name in sorted(members)) or 'none'}"
        )
    class_names = _class_names(label, {f"{split}_labels": labels for split, (_, labels) in splits.items()})
    return RawImages(None, None, class_names, {split: (i, l.astype(np.int64)) for split, (i, l) in splits.items()})


def _npy_member(label: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One .npy member: header first, checked against the member's size, then exactly the bytes it declares."""
    name = info.filename.removesuffix(".npy")
    try:
        with archive.open(info) as stream:
            version = npy_format.read_magic(stream)
            read_header = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}
            if version not in read_header:
                raise ValueError(f".npy format version {version[0]}.{version[1]}")
            shape, fortran_order, dtype = read_header[version](stream)
            if dtype.hasobject or dtype.fields is not None or dtype.itemsize == 0:
                raise GenaugError(
                    f"data {label}: {name!r} is an array of {dtype} (expected plain numbers; members holding "
                    "Python objects or records are refused, never unpickled)"
                )
            body_bytes = math.prod(shape) * dtype.itemsize
            header_bytes = stream.tell()
            if header_bytes + body_bytes != info.file_size:
                raise GenaugError(
                    f"data {label}: {name!r} declares {dtype} {shape}, {body_bytes:,} bytes, but holds "
                    f"{info.file_size - header_bytes:,} (expected a member as numpy.save writes it)"
                )
            _check_declared(label, repr(name), f"{dtype} {shape}", body_bytes)
            body = _read_at_most(stream, body_bytes)
    except UNREADABLE as error:
        raise GenaugError(f"data {label}: {name!r} is not a readable .npy array ({_reason(error)})") from None
    if len(body) != body_bytes:
        raise GenaugError(f"data {label}: {name!r} is truncated ({len(body):,} of {body_bytes:,} bytes)")
    return np.frombuffer(body, dtype).reshape(shape, order="F" if fortran_order else "C")


def _npz_images(label: str, split: str, images: np.ndarray) -> np.ndarray:
    shape = images.shape
    if images.dtype != np.uint8:
        raise GenaugError(
            f"data {label}: {split}_images is {images.dtype} (expected uint8; genaug neither clips nor rescales "
            ".npz arrays, so convert other depths to 0..255 first)"
        )
    if images.ndim not in (3, 4) or (images.ndim == 4 and shape[3] not in (1, 3)) or 0 in shape:
        raise GenaugError(
            f"data {label}: {split}_images has shape {shape} (expected N x H x W or N x H x W x 3, "
            "each 1 or more)"
        )
    return images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)  # (N, C, H, W)


def _npz_labels(label: str, split: str, labels: np.ndarray, num_images: int) -> np.ndarray:
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise GenaugError(
            f"data {label}: {split}_labels is {labels.dtype} {labels.shape} (expected integer class indices, "
            "N or N x 1)"
        )
    if len(labels) != num_images:
        raise GenaugError(f"data {label}: {split}_labels has {len(labels)} entries for {num_images} images")
    return labels


# --- idx: MNIST's own files -----------------------------------------------------------------------


def read_idx(folder: Path) -> RawImages:
    """MNIST IDX files: one `*-images-idx3-ubyte[.gz]` + `*-labels-idx1-ubyte[.gz]` pair, or train- and t10k- pairs."""
    label = _label("idx", folder)
    if not folder.is_dir():
        raise GenaugError(f"data {label}: not a folder (expected a folder with *-images-idx3-ubyte[.gz] files)")
    try:
        names = sorted(entry.name for entry in folder.iterdir())
    except OSError as error:
        raise GenaugError(f"data {label}: cannot list the folder ({_reason(error)})") from None
    pairs, labels_by_file = {}, {}
    for images_name in (name for name in names if "-images-idx3-ubyte" in name):
        prefix = images_name.split("-images-idx3-ubyte")[0]
        labels_name = next((name for name in names if name.startswith(f"{prefix}-labels-idx1-ubyte")), None)
        if labels_name is None:
            raise GenaugError(f"data {label}: {images_name!r} has no matching {prefix}-labels-idx1-ubyte[.gz]")
        images = _read_idx_file(label, folder / images_name, 3)
        labels = _read_idx_file(label, folder / labels_name, 1)
        if len(images) != len(labels):
            raise GenaugError(
                f"data {label}: {images_name!r} has {len(images):,} images but {labels_name!r} has "
                f"{len(labels):,} labels (expected one label per image)"
            )
        pairs[prefix] = (images[:, None], labels)  # (N, 1, H, W)
        labels_by_file[repr(labels_name)] = labels
    if not pairs:
        raise GenaugError(f"data {label}: no *-images-idx3-ubyte[.gz] file (expected MNIST IDX files)")
    class_names = _class_names(label, labels_by_file)
    if set(pairs) == {"train", "t10k"}:
        return RawImages(None, None, class_names, {"train": pairs["train"], "test": pairs["t10k"]})
    if len(pairs) > 1:
        raise GenaugError(
            f"data {label}: several image files ({', '.join(pairs)}); expected one pair, or train- and t10k-"
        )
    images, labels = next(iter(pairs.values()))
    return RawImages(images, labels, class_names)


def _read_idx_file(label: str, file: Path, num_dims: int) -> np.ndarray:
    """A uint8 IDX array of `num_dims` dimensions; the header's sizes are checked before the body is read."""
    compressed = file.suffix == ".gz"
    what = "a gzip-compressed IDX file, as its .gz name says" if compressed else "an IDX file"
    header_bytes = 4 + 4 * num_dims
    try:
        with (gzip.open if compressed else open)(file, "rb") as stream:
            header = stream.read(header_bytes)
            magic = bytes([0, 0, IDX_UINT8, num_dims])
            if header[:4] != magic:
                raise GenaugError(
                    f"data {label}: {file.name!r} starts with {header[:4].hex(' ') or 'nothing'} (expected "
                    f"an IDX file of uint8 with {num_dims} dimension(s): magic {magic.hex(' ')})"
                )
            if len(header) < header_bytes:
                raise GenaugError(f"data {label}: {file.name!r} ends inside its header (expected {header_bytes} bytes)")
            dims = tuple(int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(num_dims))
            if 0 in dims:
                raise GenaugError(f"data {label}: {file.name!r} declares sizes {dims} (expected 1 or more of each)")
            body_bytes = math.prod(dims)
            if not compressed and file.stat().st_size != header_bytes + body_bytes:
                raise _size_error(label, file, dims, file.stat().st_size - header_bytes)
            _check_declared(label, repr(file.name), " x ".join(map(str, dims)), body_bytes)
            body = _read_at_most(stream, body_bytes)
            more = stream.read(1)  # to tell a longer file from an exact one
    except (OSError, EOFError, zlib.error) as error:
        raise GenaugError(f"data {label}: cannot read {file.name!r} ({_reason(error)}; expected {what})") from None
    if len(body) != body_bytes or more:
        raise _size_error(label, file, dims, len(body) + len(more))
    array = np.frombuffer(body, dtype=np.uint8).reshape(dims)
    return array.astype(np.int64) if num_dims == 1 else array


def _size_error(label: str, file: Path, dims: tuple[int, ...], found_bytes: int) -> GenaugError:
    body_bytes = math.prod(dims)
    state = "is truncated" if found_bytes < body_bytes else "is longer than its header says"
    return GenaugError(
        f"data {label}: {file.name!r} {state}: the header declares {' x '.join(map(str, dims))}, {body_bytes:,} "
        f"bytes, and {found_bytes:,}{'' if found_bytes < body_bytes else ' or more'} follow (expected a complete "
        "IDX file)"
    )


# --- shared checks --------------------------------------------------------------------------------


def _check_declared(label: str, name: str, what: str, body_bytes: int) -> None:
    if body_bytes > MAX_ARRAY_BYTES:
        raise GenaugError(
            f"data {label}: {name} declares {what}, {body_bytes:,} bytes (expected at most "
            f"{MAX_ARRAY_BYTES / 2**30:g} GiB: genaug holds a data set in memory; use a smaller or resized set)"
        )


def _read_at_most(stream, limit: int) -> bytearray:
    """Up to `limit` bytes, in chunks, so a size a header declares is never allocated before the bytes exist.

    One bytearray grown in place (large blocks grow by remapping, not copying), not chunks joined at
    the end, which held every byte twice. A bytearray, so the arrays made on it are writable, as
    numpy.load's are.
    """
    buffer = bytearray()
    while len(buffer) < limit:
        chunk = stream.read(min(READ_CHUNK_BYTES, limit - len(buffer)))
        if not chunk:
            break
        buffer += chunk
    return buffer


def _class_names(label: str, labels_by_array: dict[str, np.ndarray]) -> tuple[str, ...]:
    """'0'..'K-1' when labels are 0..K-1 with every class used somewhere; anything else is refused."""
    total = sum(len(labels) for labels in labels_by_array.values())
    for name, labels in labels_by_array.items():
        smallest, largest = int(labels.min()), int(labels.max())
        if smallest < 0 or largest >= total:
            bad = smallest if smallest < 0 else largest
            raise GenaugError(
                f"data {label}: {name} holds label {bad} (expected class indices 0 to K-1 for K classes, "
                f"K at most the {total:,} images)"
            )
    counts = np.bincount(np.concatenate([labels.astype(np.int64) for labels in labels_by_array.values()]))
    unused = np.flatnonzero(counts == 0).tolist()
    if unused:
        shown = ", ".join(map(str, unused[:5])) + (" ..." if len(unused) > 5 else "")
        raise GenaugError(
            f"data {label}: no image has label {shown}, though labels go up to {len(counts) - 1} "
            "(expected class indices 0 to K-1, each used by some image)"
        )
    return tuple(str(i) for i in range(len(counts)))


def _reason(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{error.__class__.__name__}: {text}" if text else error.__class__.__name__
