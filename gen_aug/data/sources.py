"""Readers for each kind of data source; each returns uint8 (N, C, H, W) images in file order."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gen_aug.errors import GenaugError

KINDS = ("builtin", "folder", "npz", "idx")
BUILTIN_SETS = ("digits",)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@dataclass(frozen=True)
class RawImages:
    images: np.ndarray | None  # uint8 (N, C, H, W), all splits together; None when `splits` is set
    labels: np.ndarray | None  # int (N,)
    class_names: tuple[str, ...]
    splits: dict[str, tuple[np.ndarray, np.ndarray]] | None = None  # the set's own splits, if any


def read(kind: str, path: str, resolution: int | None = None) -> RawImages:
    if kind == "builtin":
        return read_builtin(path)
    source = Path(path)
    if not source.exists():
        raise GenaugError(f"data {kind}:{path}: no such file or folder")
    return {"folder": read_folder, "npz": read_npz, "idx": read_idx}[kind](source, resolution)


def read_builtin(name: str) -> RawImages:
    if name not in BUILTIN_SETS:
        raise GenaugError(f"data builtin:{name}: unknown built-in set (expected one of {', '.join(BUILTIN_SETS)})")
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 17 grey levels 0..16 (ink is high) -> 0..255, so images look like MNIST: white ink on black.
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)[:, None]
    return RawImages(images, digits.target.astype(np.int64), tuple(str(i) for i in range(10)))


def read_folder(root: Path, resolution: int | None) -> RawImages:
    """PATH/<class>/<image>: class names from subfolder names, images in sorted file-name order."""
    from PIL import Image, UnidentifiedImageError

    spec = f"folder:{root}"
    if not root.is_dir():
        raise GenaugError(f"data {spec}: not a folder (expected {root}/<class>/<image>.png)")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise GenaugError(f"data {spec}: no class subfolders (expected {root}/<class>/<image>.png)")
    pictures, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(f for f in class_dir.iterdir() if f.is_file() and not f.name.startswith("."))
        if not files:
            raise GenaugError(f"data {spec}: class folder {class_dir} has no images (expected image files)")
        for file in files:
            try:
                with Image.open(file) as opened:
                    opened.load()
                    picture = opened.convert("L") if _is_gray(opened) else opened.convert("RGB")
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
                raise GenaugError(f"data {spec}: {file} is not a readable image ({error.__class__.__name__})") from None
            if resolution is not None and picture.size != (resolution, resolution):
                picture = picture.resize((resolution, resolution), Image.BICUBIC)
            pictures.append(picture)
            labels.append(label)
    sizes = {p.size for p in pictures}
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:4])
        raise GenaugError(f"data {spec}: images have different sizes ({shown}); add ?resolution=R to resize them")
    rgb = any(p.mode == "RGB" for p in pictures)
    images = np.stack([_to_chw(p.convert("RGB") if rgb else p) for p in pictures])
    return RawImages(images, np.asarray(labels, dtype=np.int64), tuple(d.name for d in class_dirs))


def _is_gray(picture) -> bool:
    if picture.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return True
    if picture.mode == "P":
        palette = np.asarray(picture.convert("RGB"))
        return bool((palette[..., 0] == palette[..., 1]).all() and (palette[..., 1] == palette[..., 2]).all())
    return False


def _to_chw(picture) -> np.ndarray:
    array = np.asarray(picture, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def read_npz(path: Path, resolution: int | None) -> RawImages:
    """The MedMNIST layout: {train,val,test}_{images,labels}; labels (N,) or (N, 1)."""
    spec = f"npz:{path}"
    try:
        archive = np.load(path, allow_pickle=False)
        keys = set(archive.files)
    except Exception as error:  # zipfile, pickle refusal and value errors all mean 'not an npz we can read'
        raise GenaugError(f"data {spec}: not a readable .npz file ({error.__class__.__name__})") from None
    splits = {}
    with archive:
        for split in ("train", "val", "test"):
            if f"{split}_images" not in keys and f"{split}_labels" not in keys:
                continue
            if f"{split}_images" not in keys or f"{split}_labels" not in keys:
                raise GenaugError(f"data {spec}: has only one of {split}_images and {split}_labels")
            splits[split] = (_npz_images(spec, split, archive[f"{split}_images"]), _npz_labels(spec, split, archive))
    if not splits:
        raise GenaugError(
            f"data {spec}: no train_images/train_labels (or val_*, test_*) arrays; found {', '.join(sorted(keys)) or 'none'}"
        )
    num_classes = int(max(labels.max(initial=0) for _, labels in splits.values())) + 1
    return RawImages(None, None, tuple(str(i) for i in range(num_classes)), splits)


def _npz_images(spec: str, split: str, images: np.ndarray) -> np.ndarray:
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        raise GenaugError(
            f"data {spec}: {split}_images is {images.dtype} {images.shape} (expected uint8 N x H x W or N x H x W x 3)"
        )
    return images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)


def _npz_labels(spec: str, split: str, archive) -> np.ndarray:
    labels = archive[f"{split}_labels"]
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or (labels < 0).any():
        raise GenaugError(f"data {spec}: {split}_labels is {labels.dtype} {labels.shape} (expected N or N x 1 class indices)")
    if len(labels) != len(archive[f"{split}_images"]):
        raise GenaugError(f"data {spec}: {split}_labels has {len(labels)} entries for {len(archive[f'{split}_images'])} images")
    return labels.astype(np.int64)


def read_idx(folder: Path, resolution: int | None) -> RawImages:
    """MNIST IDX files: one `*-images-idx3-ubyte[.gz]` + `*-labels-idx1-ubyte[.gz]` pair, or train- and t10k- pairs."""
    spec = f"idx:{folder}"
    if not folder.is_dir():
        raise GenaugError(f"data {spec}: not a folder (expected a folder with *-images-idx3-ubyte[.gz] files)")
    pairs = {}
    for images_file in sorted(folder.glob("*-images-idx3-ubyte*")):
        prefix = images_file.name.split("-images-idx3-ubyte")[0]
        labels_file = next(iter(sorted(folder.glob(f"{prefix}-labels-idx1-ubyte*"))), None)
        if labels_file is None:
            raise GenaugError(f"data {spec}: {images_file.name} has no matching {prefix}-labels-idx1-ubyte[.gz]")
        pairs[prefix] = (_read_idx_file(spec, images_file, 3), _read_idx_file(spec, labels_file, 1))
    if not pairs:
        raise GenaugError(f"data {spec}: no *-images-idx3-ubyte[.gz] file (expected MNIST IDX files)")
    for prefix, (images, labels) in pairs.items():
        if len(images) != len(labels):
            raise GenaugError(f"data {spec}: {prefix} has {len(images)} images but {len(labels)} labels")
    all_labels = np.concatenate([labels for _, labels in pairs.values()])
    class_names = tuple(str(i) for i in range(int(all_labels.max()) + 1))
    if set(pairs) == {"train", "t10k"}:
        splits = {"train": pairs["train"], "test": pairs["t10k"]}
        return RawImages(None, None, class_names, {k: (v[0][:, None], v[1]) for k, v in splits.items()})
    if len(pairs) > 1:
        raise GenaugError(f"data {spec}: several image files ({', '.join(pairs)}); expected one pair, or train- and t10k-")
    images, labels = next(iter(pairs.values()))
    return RawImages(images[:, None], labels, class_names)


def _read_idx_file(spec: str, file: Path, expected_dims: int) -> np.ndarray:
    opener = gzip.open if file.suffix == ".gz" else open
    try:
        with opener(file, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError) as error:
        raise GenaugError(f"data {spec}: cannot read {file.name} ({error})") from None
    if len(raw) < 4 or raw[0:2] != b"\0\0" or raw[2] != 0x08 or raw[3] != expected_dims:
        raise GenaugError(f"data {spec}: {file.name} is not an IDX file of uint8 with {expected_dims} dimension(s)")
    header_end = 4 + 4 * expected_dims
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(expected_dims))
    if len(raw) != header_end + int(np.prod(dims)):
        raise GenaugError(f"data {spec}: {file.name} is truncated (header says {dims}, {len(raw) - header_end} bytes follow)")
    array = np.frombuffer(raw, dtype=np.uint8, offset=header_end).reshape(dims)
    return array.astype(np.int64) if expected_dims == 1 else array
