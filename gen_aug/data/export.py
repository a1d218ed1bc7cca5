"""A loaded split written as an ImageFolder tree of PNGs, DIR/<class>/<index>.png, so other code trains on exactly it.

Class folders sort in genaug's class order, so torchvision's ImageFolder gives every image the label
genaug gives it; file names sort in genaug's image order. Each file is written atomically.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from gen_aug.atomic import write_atomic
from gen_aug.data import LabelledImages
from gen_aug.errors import GenaugError

UNSAFE = re.compile(r"[^A-Za-z0-9._-]")  # the characters every file system and shell takes in a folder name


def export_folder(path: str | None) -> Path | None:
    """The --export-split folder, refused if it holds anything: old images would mix with the new unnoticed."""
    if path is None:
        return None
    check_export_folder(Path(path))
    return Path(path)


def check_export_folder(folder: Path) -> None:
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise GenaugError(f"--export-split {str(folder)!r}: is not a folder (expected a new or empty folder)")
    if folder.is_dir() and os.listdir(folder):
        raise GenaugError(
            f"--export-split {str(folder)!r}: folder exists and is not empty (expected a new or empty folder)"
        )


def class_folder_names(class_names: tuple[str, ...]) -> list[str]:
    """Safe folder names that sort, and compare without case, as the classes do; else each gets its label first."""
    safe = [_safe(name) for name in class_names]
    if len({name.lower() for name in safe}) == len(safe) and sorted(safe) == safe:
        return safe
    digits = len(str(len(safe) - 1))
    return [f"{label:0{digits}d}_{name}" for label, name in enumerate(safe)]


def _safe(name: str) -> str:
    safe = UNSAFE.sub("_", name)
    return "_" + safe[1:] if safe.startswith(".") else safe or "_"  # a leading dot would hide the folder


def export_split(data: LabelledImages, folder: Path) -> str:
    """Write every image of `data` as folder/<class>/<index>.png and say what was written."""
    check_export_folder(folder)
    names = class_folder_names(data.class_names)
    try:
        for name in names:  # every class, even one without images here, so ImageFolder's labels are genaug's
            (folder / name).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise GenaugError(
            f"--export-split {str(folder)!r}: cannot write ({error.strerror}; expected a writable folder)"
        ) from None
    digits = len(str(max(len(data.images) - 1, 0)))
    for index, (image, label) in enumerate(zip(data.images, data.labels)):
        write_atomic(folder / names[label] / f"{index:0{digits}d}.png", _png(image))
    lines = [f"wrote {len(data.images):,} images of {data.description} to {str(folder)!r} as <class>/<index>.png"]
    for label, (name, count) in enumerate(zip(names, data.class_counts())):
        renamed = f"  (class {data.class_names[label]!r})" if name != data.class_names[label] else ""
        lines.append(f"  {name}/  {count:,}{renamed}")
    return "\n".join(lines)


def _png(image: np.ndarray) -> bytes:
    """uint8 (C, H, W) -> PNG bytes, gray as mode L and colour as RGB, pixel for pixel."""
    picture = Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))
    stream = io.BytesIO()
    picture.save(stream, "PNG")
    return stream.getvalue()
