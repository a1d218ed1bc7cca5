"""Where a folder set's images are: its split folders, its class folders, the image files below each, and the rest.

An image's class is its top-level folder under the root, at any depth below it, as torchvision's
ImageFolder has it. Only names with image extensions are images; hidden entries and the files that
macOS and Windows leave behind are not the user's data and are passed over.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gen_aug.errors import GenaugError

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
SYSTEM_NAMES = ("__macosx", "thumbs.db", "desktop.ini")  # left by macOS zips and Windows Explorer
SPLIT_FOLDERS = {"train": "train", "val": "val", "validation": "val", "test": "test"}  # folder name -> split, in order


@dataclass(frozen=True)
class ClassTree:
    class_names: tuple[str, ...]
    files: tuple[tuple[Path, int], ...]  # (image file, label), class by class, each class sorted by path
    not_images: tuple[Path, ...]  # files below the class folders whose names are not image names
    loose_images: tuple[Path, ...]  # image files directly in the folder, so in no class
    loose_files: tuple[Path, ...] = ()  # other files directly in the folder (a labels.csv): a class is a folder's name


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def split_folders(root: Path, label: str) -> dict[str, Path] | None:
    """{split: folder} when root holds train/ and test/ and/or val/ (or validation/); None for a class-folder root."""
    children = entries(root, label)
    folders = [entry for entry in children if entry.is_dir()]
    found = {folder.name: folder for folder in folders}
    # A train/ that is a file or a dangling link beside val/ and test/ would make those two the classes.
    not_folders = [entry.name for entry in children if entry.name in SPLIT_FOLDERS and not entry.is_dir()]
    split_dirs = [name for name in SPLIT_FOLDERS if name in found]
    if not_folders and split_dirs:
        raise GenaugError(
            f"data {label}: {not_folders[0]!r} is not a folder (a file or a broken link) beside the split folders "
            f"{', '.join(f'{n}/' for n in split_dirs)} (expected every split to be a folder of "
            "class folders)"
        )
    named = {name: found[name] for name in SPLIT_FOLDERS if name in found}  # in train, val, test order
    if "train" not in named or len(named) < 2:
        return None
    if "val" in named and "validation" in named:
        raise GenaugError(f"data {label}: has both val/ and validation/ (expected one validation split folder)")
    others = [folder.name for folder in folders if folder.name not in SPLIT_FOLDERS]
    if others:
        raise GenaugError(
            f"data {label}: holds split folders {', '.join(f'{n}/' for n in named)} and other folders "
            f"{', '.join(repr(n) for n in others[:3])} (expected only train/, val/ or validation/ and test/, "
            "each holding class folders; or only class folders)"
        )
    return {SPLIT_FOLDERS[name]: folder for name, folder in named.items()}


def class_tree(folder: Path, label: str) -> ClassTree:
    """The class folders of `folder` and every image file below each; a class without images is refused."""
    if not folder.is_dir():
        raise GenaugError(f"data {label}: not a folder (expected {folder}/<class>/<image>.png)")
    children = entries(folder, label)
    class_dirs = [entry for entry in children if entry.is_dir()]
    if not class_dirs:
        raise GenaugError(f"data {label}: no class subfolders (expected {folder}/<class>/<image>.png)")
    files, not_images = [], []
    for class_label, class_dir in enumerate(class_dirs):
        below = list(_files_below(class_dir, label, ancestors=()))
        images = [file for file in below if is_image_name(file)]
        if not images:
            raise GenaugError(
                f"data {label}: class folder {str(class_dir)!r} has no images "
                f"(expected image files such as .png or .jpg in it or below it)"
            )
        files.extend((file, class_label) for file in images)
        not_images.extend(file for file in below if not is_image_name(file))
    loose = tuple(entry for entry in children if not entry.is_dir() and is_image_name(entry))
    loose_files = tuple(entry for entry in children if not entry.is_dir() and not is_image_name(entry))
    return ClassTree(tuple(d.name for d in class_dirs), tuple(files), tuple(not_images), loose, loose_files)


def entries(folder: Path, label: str) -> list[Path]:
    """The folder's entries sorted by name, without hidden and system ones."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as error:
        raise GenaugError(f"data {label}: cannot list folder {str(folder)!r} ({error.strerror})") from None
    return [folder / name for name in names if not name.startswith(".") and name.lower() not in SYSTEM_NAMES]


def _files_below(folder: Path, label: str, ancestors: tuple[tuple[int, int], ...]):
    """Every file below `folder` in path order, following links to folders, but never round a loop of links."""
    status = folder.stat()
    identity = (status.st_dev, status.st_ino)
    if identity in ancestors:
        return
    for entry in entries(folder, label):
        if entry.is_dir():
            yield from _files_below(entry, label, ancestors + (identity,))
        else:
            yield entry
