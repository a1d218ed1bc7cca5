"""Folders as users keep them: nested class folders, stray files, corrupt files, split folders, --export-split.

Guards: gen_aug/data/folder.py, gen_aug/data/files.py, gen_aug/data/decode.py, gen_aug/data/export.py
"""

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gen_aug.cli import main
from gen_aug.data import describe, load_data
from gen_aug.errors import GenaugError


def write_png(path: Path, value: int, size: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8)).save(path)


def first_pixels(spec: str) -> list[int]:
    return load_data(spec).images[:, 0, 0, 0].tolist()


def run_cli(*args):
    return CliRunner().invoke(main, list(args))


def one_error_line(result) -> str:
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height: Pillow checks its pixel limit before decoding anything."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"") + chunk(b"IEND", b""))


# --- classes read recursively, stray files ignored ------------------------------------------------


@pytest.fixture
def nested(tmp_path):
    """Classes a and b: 2 images at the top of each class folder and 3 more in subfolders, plus the usual litter."""
    root = tmp_path / "set"
    for offset, name in ((0, "a"), (100, "b")):
        for rank, relative in enumerate(["0.png", "1.PNG", "scan1/0.png", "scan1/more/0.jpg", "scan2/0.png"]):
            write_png(root / name / relative, offset + rank)
        (root / name / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0 windows thumbnails")
        (root / name / "desktop.ini").write_text("[.ShellClassInfo]")
        (root / name / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
        (root / name / ".ipynb_checkpoints").mkdir()
        (root / name / ".ipynb_checkpoints" / "0-checkpoint.png").write_bytes(b"not an image")
        (root / name / "labels.csv").write_text("file,label\n")
    (root / "__MACOSX" / "a").mkdir(parents=True)
    (root / "__MACOSX" / "a" / "._0.png").write_bytes(b"\0\5\26\7 AppleDouble")
    return root


def test_class_folders_are_read_recursively_in_path_order(nested):
    data = load_data(f"folder:{nested}?split=train")
    assert data.class_names == ("a", "b")
    # path order: 0.png, 1.PNG, scan1/0.png, scan1/more/0.jpg, scan2/0.png; rank 4 (scan2/0.png) is test
    assert first_pixels(f"folder:{nested}") == [0, 1, 2, 3, 100, 101, 102, 103]
    assert first_pixels(f"folder:{nested}?split=test") == [4, 104]


def test_stray_files_are_ignored_and_non_images_are_named(nested):
    write_png(nested / "preview.png", 9)
    (nested / "labels.csv").write_text("file,label\na/0.png,b\n")  # a label file is not read: say so
    text = describe(load_data(f"folder:{nested}"))
    assert "Thumbs.db" not in text and "DS_Store" not in text and "MACOSX" not in text
    assert "ignored 2 file(s) not named as images: 'a/labels.csv', 'b/labels.csv'" in text
    assert "ignored 1 image(s) outside the class folders: 'preview.png'" in text
    assert "ignored 1 file(s) beside the class folders: 'labels.csv' (an image's class is the name of its folder" in text


def test_a_link_loop_is_read_once(tmp_path):
    for name in ("a", "b"):
        write_png(tmp_path / "set" / name / "0.png", 1)
    (tmp_path / "set" / "a" / "loop").symlink_to(tmp_path / "set" / "a")
    assert len(load_data(f"folder:{tmp_path / 'set'}").images) == 2


# --- unreadable files: all reported at once, or skipped -------------------------------------------


@pytest.fixture
def five_broken(tmp_path):
    root = tmp_path / "set"
    for name in ("a", "b"):
        for rank in range(2):
            write_png(root / name / f"{rank}.png", rank)
    (root / "a" / "empty.png").write_bytes(b"")
    (root / "a" / "cut.png").write_bytes((root / "a" / "0.png").read_bytes()[:40])
    (root / "b" / "text.jpg").write_text("hello")
    (root / "b" / "bad\nname.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    png_header_only(root / "b" / "bomb.png", 20000, 20000)
    return root


def test_every_unreadable_file_is_in_one_error_line(five_broken):
    line = one_error_line(run_cli("data", f"folder:{five_broken}"))
    assert "5 of 9 files are not readable images: 'a/cut.png' (" in line
    assert "'a/empty.png' (not an image Pillow can identify), 'b/bad\\nname.png' (OSError: Truncated File Read)" in line
    assert "... 2 more" in line
    assert line.endswith("; add ?skip_bad=true to skip them")


def test_skip_bad_skips_them_and_says_so(five_broken):
    data = load_data(f"folder:{five_broken}?skip_bad=true")
    assert len(data.images) == 4 and data.description.endswith("&skip_bad=true")
    assert "skipped 5 unreadable file(s) (skip_bad=true): 'a/cut.png', 'a/empty.png', 'b/bad\\nname.png' ... 2 more" \
        in describe(data)


def test_decompression_bomb_is_an_unreadable_file(tmp_path):
    write_png(tmp_path / "set" / "a" / "0.png", 0)
    png_header_only(tmp_path / "set" / "b" / "huge.png", 20000, 20000)
    line = one_error_line(run_cli("data", f"folder:{tmp_path / 'set'}"))
    assert "'b/huge.png' (over Pillow's limit of 89,478,485 pixels: a decompression bomb?)" in line


def test_pillows_bomb_warning_counts_too(tmp_path, monkeypatch):
    """Between 1x and 2x its limit Pillow only warns; such a file is refused all the same."""
    write_png(tmp_path / "set" / "a" / "0.png", 0, size=4)
    write_png(tmp_path / "set" / "b" / "0.png", 0, size=5)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # 25 pixels: over the limit, under twice it
    with pytest.raises(GenaugError, match=r"'b/0.png' \(over Pillow's limit of 20 pixels"):
        load_data(f"folder:{tmp_path / 'set'}")


def test_a_class_left_without_images_is_refused(tmp_path):
    write_png(tmp_path / "set" / "a" / "0.png", 0)
    write_png(tmp_path / "set" / "b" / "0.png", 0)
    (tmp_path / "set" / "c").mkdir()
    (tmp_path / "set" / "c" / "x.png").write_bytes(b"")
    with pytest.raises(GenaugError, match=r"class 'c' has no readable images left after skip_bad=true"):
        load_data(f"folder:{tmp_path / 'set'}?skip_bad=true")


# --- split folders --------------------------------------------------------------------------------


def split_tree(root: Path, splits=("train", "test"), classes=("cat", "dog"), count: int = 5) -> Path:
    """Image values: 10 x split number + class number, so a pixel says where it came from."""
    for s, split in enumerate(splits):
        for c, name in enumerate(classes):
            for rank in range(count):
                write_png(root / split / name / f"{rank}.png", 10 * s + c)
    return root


def test_split_folders_are_the_splits_with_no_hold_out(tmp_path):
    root = split_tree(tmp_path / "set", ("train", "validation", "test"))
    assert first_pixels(f"folder:{root}") == [0] * 5 + [1] * 5
    assert first_pixels(f"folder:{root}?split=val") == [10] * 5 + [11] * 5
    assert first_pixels(f"folder:{root}?split=test") == [20] * 5 + [21] * 5
    assert "splits from the folders train/, validation/, test/ (no hold-out)" in describe(load_data(f"folder:{root}"))


def test_a_split_the_tree_lacks_is_refused(tmp_path):
    root = split_tree(tmp_path / "set")
    with pytest.raises(GenaugError, match=r"split 'val' does not exist \(this set has train, test\)"):
        load_data(f"folder:{root}?split=val")


def test_split_folders_must_have_the_same_classes(tmp_path):
    root = split_tree(tmp_path / "set")
    write_png(root / "train" / "owl" / "0.png", 0)
    with pytest.raises(GenaugError, match=r"different class folders \(test/ lacks 'owl'; expected the same class "
                                          r"folders in each of train/, test/\)"):
        load_data(f"folder:{root}")


def test_split_folders_beside_other_folders_are_refused(tmp_path):
    root = split_tree(tmp_path / "set")
    write_png(root / "extra" / "0.png", 0)
    with pytest.raises(GenaugError, match=r"holds split folders train/, test/ and other folders 'extra'"):
        load_data(f"folder:{root}")


@pytest.mark.parametrize("kind", ["file", "dangling link"])
def test_a_split_name_that_is_not_a_folder_is_refused(tmp_path, kind):
    # It was read as a class-folder set whose classes were the other splits' names.
    root = split_tree(tmp_path / "set", ("val", "test"))
    if kind == "file":
        (root / "train").write_text("not a folder")
    else:
        (root / "train").symlink_to(tmp_path / "gone")
    with pytest.raises(GenaugError, match=r"'train' is not a folder \(a file or a broken link\) beside the split "
                                          r"folders val/, test/"):
        load_data(f"folder:{root}")


def test_a_split_folder_alone_keeps_the_protocol_and_says_where_the_tree_is(tmp_path):
    root = split_tree(tmp_path / "set")
    data = load_data(f"folder:{root / 'train'}")
    assert len(data.images) == 8  # rank 4 of each class held out, as for any folder without split folders
    assert f"folder:{root} uses the tree's own splits" in describe(data)


# --- --export-split ---------------------------------------------------------------------------------


def test_export_split_is_what_imagefolder_reads_back(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    spec = "builtin:digits?split=test&limit_per_class=3"
    result = run_cli("data", spec, "--export-split", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert f"wrote 30 images of {spec} to {str(tmp_path / 'out')!r}" in result.output
    data = load_data(spec)
    folder = torchvision.datasets.ImageFolder(str(tmp_path / "out"), loader=lambda p: np.asarray(Image.open(p)))
    assert folder.classes == list(data.class_names)
    assert [label for _, label in folder.samples] == sorted(data.labels.tolist())  # ImageFolder goes class by class
    for label in range(10):
        theirs = np.stack([image for image, target in folder if target == label])
        assert np.array_equal(theirs, data.images[data.labels == label][:, 0])


def test_export_split_makes_class_names_safe_in_genaugs_order(tmp_path):
    """'a b' -> a_b would sort after a-c, so every class folder is led by its label and ImageFolder keeps the labels."""
    for value, name in enumerate(("a b", "a-c", "x\ny")):
        write_png(tmp_path / "set" / name / "0.png", value)
    result = run_cli("data", f"folder:{tmp_path / 'set'}", "--export-split", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0_a_b", "1_a-c", "2_x_y"]
    assert "  2_x_y/  1  (class 'x\\ny')" in result.output
    assert np.asarray(Image.open(tmp_path / "out" / "1_a-c" / "1.png"))[0, 0] == 1


def test_export_split_refuses_a_folder_with_anything_in_it(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.png").write_bytes(b"")
    line = one_error_line(run_cli("data", "builtin:digits", "--export-split", str(tmp_path / "out")))
    assert f"--export-split {str(tmp_path / 'out')!r}: folder exists and is not empty" in line
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["old.png"]
