"""Data sources on files the tests make themselves, the real shared sets when present, and every bad input.

Guards: gen_aug/data/__init__.py, gen_aug/data/spec.py, gen_aug/data/sources.py, gen_aug/data/raw.py,
    gen_aug/data/folder.py, gen_aug/data/files.py, gen_aug/data/resizing.py
"""

import gzip
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gen_aug.cli import main
from gen_aug.data import convert_channels, load_data, parse_spec, protocol_test_mask
from gen_aug.errors import GenaugError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent")


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def gray_folder(tmp_path):
    """Two classes, 6 and 5 gray 10x10 images whose first pixel encodes class and file rank."""
    root = tmp_path / "set"
    for name, count in (("cat", 6), ("dog", 5)):
        for rank in range(count):
            pixels = np.zeros((10, 10), np.uint8)
            pixels[0, 0] = 10 * (name == "dog") + rank
            write_png(root / name / f"{rank:03d}.png", pixels)
    return root


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool = True):
    folder.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if gz else open
    suffix = ".gz" if gz else ""
    n, rows, cols = images.shape
    with opener(folder / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (n, rows, cols)) + images.tobytes())
    with opener(folder / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + labels.astype(np.uint8).tobytes())


def run_cli(*args):
    return CliRunner().invoke(main, list(args))


# --- the split protocol -------------------------------------------------------------------------


def test_protocol_takes_rank_4_9_14_within_each_class():
    labels = np.array([0, 1] * 10 + [1] * 3)
    is_test = protocol_test_mask(labels)
    zeros, ones = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    assert is_test[zeros].nonzero()[0].tolist() == [4, 9]
    assert is_test[ones].nonzero()[0].tolist() == [4, 9]
    assert is_test.sum() == 4


def test_builtin_digits_train_and_test_partition_the_set():
    train, test = load_data("builtin:digits"), load_data("builtin:digits?split=test")
    assert len(train.images) + len(test.images) == 1797
    assert train.images.dtype == np.uint8 and train.images.shape[1:] == (1, 8, 8)
    assert train.labels.dtype == np.int64 and train.class_names == tuple("0123456789")
    assert train.images.max() == 255 and train.images.min() == 0
    assert train.fingerprint != test.fingerprint
    assert load_data("builtin:digits").fingerprint == train.fingerprint


def test_options_limit_resize_and_channels():
    data = load_data("builtin:digits?limit_per_class=7&resolution=16&channels=3")
    assert data.images.shape == (70, 3, 16, 16)
    assert data.class_counts().tolist() == [7] * 10
    assert str(parse_spec("builtin:digits?channels=3")) == "builtin:digits?split=train&channels=3"


def test_limit_per_class_keeps_the_first_images_in_file_order():
    full = load_data("builtin:digits")
    limited = load_data("builtin:digits?limit_per_class=3")
    for label in range(10):
        expected = full.images[full.labels == label][:3]
        assert np.array_equal(limited.images[limited.labels == label], expected)


def test_rgb_to_gray_matches_pillow():
    rgb = np.random.default_rng(0).integers(0, 256, (2, 3, 5, 5), dtype=np.uint8)
    gray = convert_channels(rgb, 1)
    for i in range(2):
        expected = np.asarray(Image.fromarray(rgb[i].transpose(1, 2, 0)).convert("L"))
        assert np.abs(gray[i, 0].astype(int) - expected.astype(int)).max() <= 1


# --- folder ---------------------------------------------------------------------------------------


def test_folder_classes_order_and_split(gray_folder):
    train = load_data(f"folder:{gray_folder}")
    test = load_data(f"folder:{gray_folder}?split=test")
    assert train.class_names == ("cat", "dog")
    assert test.images[:, 0, 0, 0].tolist() == [4, 14]  # rank 4 of each class
    assert len(train.images) == 9 and train.images.shape[1:] == (1, 10, 10)


def test_folder_mixed_gray_and_rgb_becomes_rgb(tmp_path):
    write_png(tmp_path / "a" / "0.png", np.full((4, 4), 7, np.uint8))
    write_png(tmp_path / "b" / "0.png", np.full((4, 4, 3), (1, 2, 3), np.uint8))
    data = load_data(f"folder:{tmp_path}?split=train")
    assert data.images.shape == (2, 3, 4, 4)
    assert data.images[1, :, 0, 0].tolist() == [1, 2, 3]


def test_folder_mixed_sizes_resized_with_resolution(tmp_path):
    write_png(tmp_path / "a" / "0.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "b" / "0.png", np.zeros((6, 6), np.uint8))
    assert load_data(f"folder:{tmp_path}?resolution=5").images.shape == (2, 1, 5, 5)


# --- npz and idx ----------------------------------------------------------------------------------


def test_npz_medmnist_layout_with_column_labels(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "set.npz"
    np.savez(
        path,
        train_images=rng.integers(0, 256, (6, 5, 5, 3), dtype=np.uint8),
        train_labels=np.array([[0], [1], [2], [0], [1], [2]]),
        test_images=rng.integers(0, 256, (3, 5, 5, 3), dtype=np.uint8),
        test_labels=np.array([[0], [1], [2]]),
    )
    data = load_data(f"npz:{path}?split=test")
    assert data.images.shape == (3, 3, 5, 5) and data.labels.tolist() == [0, 1, 2]
    assert data.class_names == ("0", "1", "2")


@pytest.mark.parametrize("gz", [True, False])
def test_idx_single_pair_uses_protocol(tmp_path, gz):
    images = np.arange(20 * 4 * 4, dtype=np.uint32).astype(np.uint8).reshape(20, 4, 4)
    write_idx(tmp_path, "t10k", images, np.array([0, 1] * 10), gz=gz)
    assert len(load_data(f"idx:{tmp_path}").images) == 16
    assert len(load_data(f"idx:{tmp_path}?split=test").images) == 4


def test_idx_train_and_t10k_are_the_splits(tmp_path):
    write_idx(tmp_path, "train", np.zeros((6, 4, 4), np.uint8), np.array([0, 1, 0, 1, 0, 1]))
    write_idx(tmp_path, "t10k", np.ones((2, 4, 4), np.uint8), np.array([0, 1]))
    assert len(load_data(f"idx:{tmp_path}").images) == 6
    assert load_data(f"idx:{tmp_path}?split=test").images.max() == 1


# --- the real shared sets -------------------------------------------------------------------------


@needs_shared
@pytest.mark.parametrize(
    "spec, count, channels",
    [
        ("idx:{S}/mnist-t10k?split=train", 8004, 1),
        ("idx:{S}/mnist-t10k?split=test", 1996, 1),
        ("npz:{S}/breastmnist/breastmnist.npz?split=train", 546, 1),
        ("npz:{S}/retinamnist/retinamnist.npz?split=train", 1080, 3),
        ("npz:{S}/retinamnist/retinamnist.npz?split=test", 400, 3),
    ],
)
def test_shared_sets_have_their_documented_sizes(spec, count, channels):
    data = load_data(spec.format(S=SHARED))
    assert len(data.images) == count and data.shape == (channels, 28, 28)


@needs_shared
def test_mnist_protocol_test_split_is_a_fifth_of_each_class():
    test = load_data(f"idx:{SHARED}/mnist-t10k?split=test")
    assert test.class_counts().tolist() == [196, 227, 206, 202, 196, 178, 191, 205, 194, 201]


@needs_shared
def test_data_command_prints_counts():
    result = run_cli("data", f"npz:{SHARED}/retinamnist/retinamnist.npz?split=train")
    assert result.exit_code == 0, result.output
    assert "1,080" in result.output and "3x28x28" in result.output and "66" in result.output


def test_data_command_on_builtin():
    result = run_cli("data", "builtin:digits")
    assert result.exit_code == 0 and "1,442" in result.output and "1x8x8" in result.output


# --- bad input: one line naming the input, exit 1, no traceback -----------------------------------


def _make_bad(tmp_path: Path, case: str) -> str:
    if case == "missing":
        return f"folder:{tmp_path}/nope"
    if case == "no classes":
        (tmp_path / "empty").mkdir()
        return f"folder:{tmp_path}/empty"
    if case == "empty class":
        write_png(tmp_path / "s" / "a" / "0.png", np.zeros((4, 4), np.uint8))
        (tmp_path / "s" / "b").mkdir()
        return f"folder:{tmp_path}/s"
    if case == "corrupt image":
        write_png(tmp_path / "s" / "a" / "0.png", np.zeros((4, 4), np.uint8))
        (tmp_path / "s" / "b").mkdir()
        (tmp_path / "s" / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
        return f"folder:{tmp_path}/s"
    if case == "mixed sizes":
        write_png(tmp_path / "s" / "a" / "0.png", np.zeros((4, 4), np.uint8))
        write_png(tmp_path / "s" / "b" / "0.png", np.zeros((5, 5), np.uint8))
        return f"folder:{tmp_path}/s"
    if case == "single class":
        write_png(tmp_path / "s" / "a" / "0.png", np.zeros((4, 4), np.uint8))
        return f"folder:{tmp_path}/s?split=train"
    if case == "npz keys":
        np.savez(tmp_path / "x.npz", pictures=np.zeros((2, 4, 4), np.uint8))
        return f"npz:{tmp_path}/x.npz"
    if case == "not npz":
        (tmp_path / "x.npz").write_text("hello")
        return f"npz:{tmp_path}/x.npz"
    if case == "idx truncated":
        write_idx(tmp_path / "m", "t10k", np.zeros((4, 4, 4), np.uint8), np.array([0, 1, 0, 1]), gz=False)
        path = tmp_path / "m" / "t10k-images-idx3-ubyte"
        path.write_bytes(path.read_bytes()[:-5])
        return f"idx:{tmp_path}/m"
    return case  # the spec itself is the bad input


BAD_SPECS = {
    "missing": "no such file or folder",
    "no classes": "no class subfolders",
    "empty class": "has no images",
    "corrupt image": "1 of 2 files is not a readable image: 'b/broken.png'",
    "mixed sizes": "different sizes (4x4, 5x5); add ?resolution=R",
    "single class": "found 1 class (expected 2 or more",
    "npz keys": "no train_images/train_labels",
    "not npz": "not a readable .npz file",
    "idx truncated": "is truncated",
    "cifar:/x": "unknown kind 'cifar'",
    "builtin:faces": "unknown built-in set",
    "builtin:digits?colour=red": "unknown option 'colour'",
    "builtin:digits?split=dev": "split='dev' (expected train, val or test)",
    "builtin:digits?split=val": "split 'val' does not exist",
    "builtin:digits?limit_per_class=500": "limit_per_class=500 is larger than a class",
    "builtin:digits?limit_per_class=-2": "limit_per_class='-2' (expected a positive whole number)",
    "builtin:digits?resolution=abc": "resolution='abc' (expected a positive whole number)",
    "builtin:digits?resolution=2": "resolution=2 (expected 4 to 1024)",
    "builtin:digits?channels=2": "channels=2 (expected 1 or 3)",
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_bad_input_is_one_line_error(tmp_path, case):
    spec = _make_bad(tmp_path, case)
    result = run_cli("data", spec)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert BAD_SPECS[case] in lines[0]
    assert spec.split("?")[0].split(":", 1)[1].split("/")[-1] in lines[0]  # names the input


def test_library_raises_genaug_error():
    with pytest.raises(GenaugError, match="unknown kind"):
        load_data("nope:x")


def test_class_fraction_keeps_the_first_share_of_one_class_in_file_order():
    full = load_data("builtin:digits")
    cut = load_data("builtin:digits?class_fraction=3:0.1")
    counts, full_counts = cut.class_counts(), full.class_counts()
    assert counts[3] == round(0.1 * full_counts[3]) and np.array_equal(np.delete(counts, 3), np.delete(full_counts, 3))
    first_threes = full.images[full.labels == 3][: counts[3]]
    assert np.array_equal(cut.images[cut.labels == 3], first_threes)
    assert cut.fingerprint != full.fingerprint and "class_fraction=3:0.1" in cut.description
    assert load_data("builtin:digits?class_fraction=3:0.0001").class_counts()[3] == 1  # never empties a class


@pytest.mark.parametrize("option, message", [("class_fraction=3:0", "expected CLASS:F"),
                                             ("class_fraction=3", "expected CLASS:F"),
                                             ("class_fraction=cat:0.5", "names class 'cat'")])
def test_bad_class_fractions_are_one_line_errors(option, message):
    with pytest.raises(GenaugError, match=message):
        load_data(f"builtin:digits?{option}")


def test_numbered_classes_take_names_from_the_spec_and_keep_their_pixels():
    numbered = load_data("builtin:digits?limit_per_class=3")
    named = load_data("builtin:digits?limit_per_class=3&classes=" + ",".join(f"d{k}" for k in range(10)))
    assert named.class_names == tuple(f"d{k}" for k in range(10)) and numbered.class_names[0] == "0"
    assert np.array_equal(named.images, numbered.images) and np.array_equal(named.labels, numbered.labels)
    assert named.description.endswith("&classes=d0,d1,d2,d3,d4,d5,d6,d7,d8,d9")
    cut = load_data("builtin:digits?class_fraction=d0:0.1&classes=" + ",".join(f"d{k}" for k in range(10)))
    assert cut.class_counts()[0] == 14  # class_fraction takes the new name


@pytest.mark.parametrize("spec, message", [
    ("builtin:digits?classes=a,b", "classes= gives 2 names for 10 classes"),
    ("builtin:digits?classes=a,a,b", "classes='a,a,b' (expected distinct names"),
    ("folder:x?classes=a,b", "a folder's classes are its subfolders' names"),
])
def test_bad_class_names_are_one_line_errors(spec, message):
    with pytest.raises(GenaugError, match=re.escape(message)):
        load_data(spec)
