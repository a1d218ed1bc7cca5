"""`folder:ROOT` sets: class folders of image files, or train/ val/ test/ split folders of them -> RawImages.

Every file is decoded before any is kept, so all unreadable files are reported in one line; the
intensity mapping and the channel count are chosen over the whole tree, every split alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gen_aug.data.files import IMAGE_SUFFIXES, SPLIT_FOLDERS, class_tree, split_folders
from gen_aug.data.decode import BadImage, Decoded, decode
from gen_aug.data.form import SourceForm
from gen_aug.data.intensity import rescale
from gen_aug.data.raw import RawImages
from gen_aug.data.resizing import Resizer
from gen_aug.data.spec import DataSpec
from gen_aug.errors import GenaugError

NAMES_SHOWN = 3  # file names quoted in an error or note before "... N more"


@dataclass(frozen=True)
class Item:
    split: str | None  # the split folder it lies in; None without split folders
    file: Path
    label: int
    name: str  # its path relative to ROOT, as errors and notes show it


def read_folder(spec: DataSpec) -> RawImages:
    root, label = Path(spec.path), f"folder:{spec.path}"
    layout = split_folders(root, label) if root.is_dir() else None
    trees = {split: class_tree(folder, label) for split, folder in (layout or {None: root}).items()}
    if layout is not None:
        _check_same_classes(label, layout, trees)
    class_names = next(iter(trees.values())).class_names
    items = [
        Item(split, file, class_label, file.relative_to(root).as_posix())
        for split, tree in trees.items()
        for file, class_label in tree.files
    ]
    resizer = Resizer(spec.resolution, spec.resize)
    decoded, bad, sizes = _decode_all(items, resizer)
    notes = _layout_notes(root, label, layout, trees)
    if bad and not spec.skip_bad:
        raise _unreadable_files_error(label, bad, len(items))
    if bad:
        notes.append(f"skipped {len(bad):,} unreadable file(s) (skip_bad=true): {quoted([name for name, _ in bad])}")
        items, decoded, sizes = zip(*[(item, d, size) for item, d, size in zip(items, decoded, sizes) if d is not None])
        _check_no_class_emptied(label, trees, items)
    pictures, mapping, ranges = _to_uint8(label, items, decoded, spec, resizer)
    form = _source_form(sizes, decoded, ranges)
    notes.extend(mapping)
    if resizer.note():
        notes.append(resizer.note())
    notes.extend(_pixel_notes(items, decoded, pictures))
    images = _stack(label, pictures)
    labels = np.asarray([item.label for item in items], dtype=np.int64)
    if layout is None:
        return RawImages(images, labels, class_names, None, tuple(notes), "; ".join(mapping), form)
    where = np.asarray([item.split for item in items])
    splits = {split: (images[where == split], labels[where == split]) for split in layout}
    return RawImages(None, None, class_names, splits, tuple(notes), "; ".join(mapping), form)


def _source_form(sizes, decoded, ranges: dict) -> SourceForm:
    """The pictures' own size (when one for all) and depth, every split alike: what --restore goes back to."""
    height, width = next(iter(sizes)) if len(set(sizes)) == 1 else (None, None)
    depths = {d.depth for d in decoded}
    if depths == {None}:
        return SourceForm(height, width)
    deep = sorted(depth for depth in depths if depth is not None)
    low, high = ranges[deep[0]] or (None, None)
    return SourceForm(height, width, depth=deep[0], low=low, high=high, mixed_depths=len(depths) > 1)


def quoted(names: list[str]) -> str:
    """'a.png', 'b.png', 'c.png' ... 4 more: repr keeps a name with a newline on one line."""
    shown = ", ".join(repr(name) for name in names[:NAMES_SHOWN])
    return shown + (f" ... {len(names) - NAMES_SHOWN:,} more" if len(names) > NAMES_SHOWN else "")


def _check_same_classes(label: str, layout: dict[str, Path], trees: dict) -> None:
    classes = {split: set(tree.class_names) for split, tree in trees.items()}
    every = set().union(*classes.values())
    lacking = [
        f"{layout[split].name}/ lacks {quoted(sorted(every - have))}" for split, have in classes.items() if every - have
    ]
    if lacking:
        folders = ", ".join(f"{folder.name}/" for folder in layout.values())
        raise GenaugError(
            f"data {label}: the split folders have different class folders ({'; '.join(lacking)}; "
            f"expected the same class folders in each of {folders})"
        )


def _decode_all(items: list[Item], resizer: Resizer) -> tuple[list[Decoded | None], list[tuple[str, str]], list]:
    """Decoded files (None where unreadable), the (name, reason) of each unreadable one, and each file's own
    (height, width) before any resize (None where unreadable)."""
    decoded, bad, sizes = [], [], []
    for item in items:
        try:
            picture = decode(item.file)
        except BadImage as error:
            decoded.append(None)
            bad.append((item.name, str(error)))
            sizes.append(None)
            continue
        sizes.append(picture.pixels.shape[:2])
        if picture.depth is None:  # 8-bit: resize now, so a set of large photos never sits in memory at full size
            picture = replace(picture, pixels=resizer(picture.pixels))
        decoded.append(picture)
    return decoded, bad, sizes


def _unreadable_files_error(label: str, bad: list[tuple[str, str]], total: int) -> GenaugError:
    """One line for all unreadable files: how many, the first few with their reasons, and what to do."""
    count = len(bad)
    reasons = ", ".join(f"{name!r} ({reason})" for name, reason in bad[:NAMES_SHOWN])
    more = f" ... {count - NAMES_SHOWN:,} more" if count > NAMES_SHOWN else ""
    head = f"1 of {total:,} files is not a readable image" if count == 1 else (
        f"{count:,} of {total:,} files are not readable images")
    tail = "expected image files that Pillow can open" if count == total else (
        f"add ?skip_bad=true to skip {'it' if count == 1 else 'them'}")
    return GenaugError(f"data {label}: {head}: {reasons}{more}; {tail}")


def _check_no_class_emptied(label: str, trees: dict, items: list[Item]) -> None:
    for split, tree in trees.items():
        present = {item.label for item in items if item.split == split}
        emptied = [name for class_label, name in enumerate(tree.class_names) if class_label not in present]
        if emptied:
            where = f" in {split}" if split else ""
            raise GenaugError(
                f"data {label}: class {quoted(emptied)}{where} has no readable images left after skip_bad=true "
                "(expected at least one readable image in every class folder)"
            )


def _to_uint8(label: str, items, decoded, spec: DataSpec, resizer: Resizer) -> tuple[list[np.ndarray], list[str], dict]:
    """Every picture as uint8 at its final size; 16/32-bit ones mapped per spec.intensity, one mapping per depth,
    whose range (None for intensity=image) the dict gives."""
    pictures = [d.pixels if d.depth is None else None for d in decoded]
    notes, ranges = [], {}
    for depth in sorted({d.depth for d in decoded if d.depth is not None}):
        where = [i for i, d in enumerate(decoded) if d.depth == depth]
        mapped, note, ranges[depth] = rescale(label, depth, [(items[i].name, decoded[i].pixels) for i in where],
                                              spec.intensity)
        for i, pixels in zip(where, mapped):
            pictures[i] = resizer(pixels)
        notes.append(note)
    return pictures, notes, ranges


def _stack(label: str, pictures: list[np.ndarray]) -> np.ndarray:
    """uint8 (N, C, H, W); gray pictures get three equal channels when any picture is in colour."""
    sizes = {picture.shape[:2] for picture in pictures}
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for h, w in sorted(sizes)[:4])
        raise GenaugError(f"data {label}: images have different sizes ({shown}); add ?resolution=R to resize them")
    if any(picture.ndim == 3 for picture in pictures):
        pictures = [np.repeat(p[..., None], 3, axis=2) if p.ndim == 2 else p for p in pictures]
        return np.stack(pictures).transpose(0, 3, 1, 2)
    return np.stack(pictures)[:, None]


def _layout_notes(root: Path, label: str, layout, trees: dict) -> list[str]:
    notes = []
    if layout is not None:
        notes.append(f"splits from the folders {', '.join(f'{f.name}/' for f in layout.values())} (no hold-out)")
    elif root.name in SPLIT_FOLDERS and _is_split_tree(root.parent, label):
        notes.append(
            f"{root.name}/ is one split folder of {str(root.parent)!r}: here rank 4, 9, 14, ... of each class "
            f"is held out as test; folder:{root.parent} uses the tree's own splits"
        )
    not_images = [p.relative_to(root).as_posix() for tree in trees.values() for p in tree.not_images]
    if not_images:
        notes.append(f"ignored {len(not_images):,} file(s) not named as images: {quoted(not_images)} "
                     f"(images end in {', '.join(IMAGE_SUFFIXES)})")
    loose = [p.relative_to(root).as_posix() for tree in trees.values() for p in tree.loose_images]
    if loose:
        notes.append(f"ignored {len(loose):,} image(s) outside the class folders: {quoted(loose)}")
    beside = [p.relative_to(root).as_posix() for tree in trees.values() for p in tree.loose_files]
    if beside:
        notes.append(f"ignored {len(beside):,} file(s) beside the class folders: {quoted(beside)} "
                     "(an image's class is the name of its folder; no label file is read)")
    return notes


def _is_split_tree(folder: Path, label: str) -> bool:
    try:
        return split_folders(folder, label) is not None
    except GenaugError:
        return False


def _pixel_notes(items, decoded, pictures) -> list[str]:
    notes = []
    alpha = [item.name for item, d in zip(items, decoded) if d.alpha_dropped]
    if alpha:
        notes.append(
            f"alpha dropped from {len(alpha):,} image(s), as torchvision's default loader does: {quoted(alpha)}"
        )
    if any(p.ndim == 3 for p in pictures) and any(p.ndim == 2 for p in pictures):
        gray = sum(p.ndim == 2 for p in pictures)
        notes.append(f"{gray:,} gray image(s) given 3 equal channels, as the set has colour images")
    top_byte = [item.name for item, d in zip(items, decoded) if d.top_byte_only]
    if top_byte:
        notes.append(f"{len(top_byte):,} 16-bit colour (or gray and alpha) image(s) kept as the top 8 bits of "
                     f"each channel (Pillow decodes them no finer): {quoted(top_byte)}")
    frames = [item.name for item, d in zip(items, decoded) if d.frames > 1]
    if frames:
        notes.append(f"only the first frame read of {len(frames):,} multi-frame file(s): {quoted(frames)}")
    return notes
