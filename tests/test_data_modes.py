"""Every Pillow mode loads to known uint8 values; 16/32-bit images map linearly, never clipped, as ?intensity= says.

Guards: gen_aug/data/decode.py, gen_aug/data/intensity.py
"""

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gen_aug.data import describe, load_data
from gen_aug.errors import GenaugError


def save(picture: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)


def two_classes(root: Path, picture: Image.Image, suffix: str = ".png") -> str:
    """The same picture as the one image of classes a and b: the train split then holds both."""
    for name in ("a", "b"):
        save(picture, root / name / f"0{suffix}")
    return f"folder:{root}"


def sixteen_bit(values, mode: str = "I;16") -> Image.Image:
    array = np.asarray(values, dtype=">u2" if mode == "I;16B" else "<u2")
    return Image.frombytes(mode, (array.shape[1], array.shape[0]), array.tobytes())


def linear(values, low, high) -> list:
    """What a linear map low..high -> 0..255 with halves rounded up gives, in exact integers."""
    return [[((v - low) * 510 + (high - low)) // (2 * (high - low)) for v in row] for row in values]


def palette_image(indices, colours) -> Image.Image:
    picture = Image.fromarray(np.asarray(indices, np.uint8)).convert("P")
    picture.putpalette([c for colour in colours for c in colour] + [0] * 3 * (256 - len(colours)))
    return picture


RGB_PIXELS = np.array([[[10, 20, 30], [40, 50, 60]], [[250, 0, 5], [1, 2, 3]]], np.uint8)
ALPHA = np.array([[0, 255], [128, 7]], np.uint8)

# mode -> (picture, file suffix, expected uint8 (C, H, W) of the loaded image)
MODES = {
    "1": (Image.fromarray(np.array([[True, False], [False, True]])), ".png", [[[255, 0], [0, 255]]]),
    "L": (Image.fromarray(np.array([[0, 7], [128, 255]], np.uint8)), ".png", [[[0, 7], [128, 255]]]),
    "LA": (Image.merge("LA", [Image.fromarray(np.array([[3, 9], [27, 81]], np.uint8)), Image.fromarray(ALPHA)]),
           ".png", [[[3, 9], [27, 81]]]),
    "P colour": (palette_image([[0, 1], [1, 2]], [(10, 20, 30), (40, 50, 60), (200, 100, 0)]), ".png",
                 [[[10, 40], [40, 200]], [[20, 50], [50, 100]], [[30, 60], [60, 0]]]),
    "P gray": (palette_image([[0, 1], [1, 0]], [(5, 5, 5), (200, 200, 200)]), ".gif", [[[5, 200], [200, 5]]]),
    "RGB": (Image.fromarray(RGB_PIXELS), ".png", RGB_PIXELS.transpose(2, 0, 1).tolist()),
    "RGBA": (Image.fromarray(np.dstack([RGB_PIXELS, ALPHA])), ".png", RGB_PIXELS.transpose(2, 0, 1).tolist()),
    "I;16": (sixteen_bit([[0, 1000], [2000, 4095]]), ".png", [linear([[0, 1000], [2000, 4095]], 0, 4095)]),
    "I;16B": (sixteen_bit([[10, 300], [301, 60000]], "I;16B"), ".tif", [linear([[10, 300], [301, 60000]], 10, 60000)]),
    "I": (Image.fromarray(np.array([[-1000, 0], [1000, 3000]], np.int32)), ".tif",
          [linear([[-1000, 0], [1000, 3000]], -1000, 3000)]),
    "F": (Image.fromarray(np.array([[0.25, 0.5], [1.0, 2.25]], np.float32)), ".tif",
          [[[0, 32], [96, 255]]]),  # (v - 0.25) / 2 * 255, rounded half up
}


@pytest.mark.parametrize("case", list(MODES))
def test_every_mode_loads_to_known_pixels(tmp_path, case):
    picture, suffix, expected = MODES[case]
    assert picture.mode == case.split()[0]
    spec = two_classes(tmp_path / "set", picture, suffix)
    with Image.open(tmp_path / "set" / "a" / f"0{suffix}") as written:
        assert written.mode == case.split()[0]  # the file really is in this mode, not converted on saving
    data = load_data(spec)
    assert data.images.dtype == np.uint8 and data.images[0].tolist() == expected
    text = describe(data)
    assert ("alpha dropped from 2 image(s)" in text) == (case in ("LA", "RGBA"))
    assert ("images rescaled from" in text) == (case in ("I;16", "I;16B", "I", "F"))


def test_sixteen_bit_colour_keeps_its_top_byte_and_says_so(tmp_path):
    """Pillow reads 16-bit RGB PNGs as 8-bit RGB, each value divided by 256: linear, unclipped, and now stated."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = np.array([[[0, 1000, 65535], [300, 40000, 255]]], ">u2")
    rows = b"".join(b"\0" + row.tobytes() for row in pixels)  # filter type 0 before each row
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 16, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    for name in ("a", "b"):
        (tmp_path / "set" / name).mkdir(parents=True)
        (tmp_path / "set" / name / "0.png").write_bytes(png)
    data = load_data(f"folder:{tmp_path / 'set'}")
    assert data.images[0].transpose(1, 2, 0).tolist() == (pixels.astype(int) // 256).tolist()
    assert "2 16-bit colour (or gray and alpha) image(s) kept as the top 8 bits of each channel" in describe(data)


def test_twelve_bit_scan_is_not_white(tmp_path):
    """The users' report: a 12-bit X-ray in a 16-bit PNG loaded as 255 almost everywhere."""
    scan = np.linspace(0, 4095, 64 * 64).astype(np.uint16).reshape(64, 64)
    data = load_data(two_classes(tmp_path / "set", Image.fromarray(scan)))
    assert data.images.min() == 0 and data.images.max() == 255
    assert (data.images == 255).mean() < 0.01
    assert np.array_equal(data.images[0, 0], np.asarray(linear(scan.astype(int).tolist(), 0, 4095)))
    assert "16-bit images rescaled from 0..4095 to 0..255 (intensity=set" in describe(data)


@pytest.fixture
def dim_and_bright(tmp_path):
    """Class a: a 16-bit image up to 1000; class b: one up to 4000, four times as bright."""
    save(sixteen_bit([[0, 500], [1000, 1000]]), tmp_path / "set" / "a" / "dim.png")
    save(sixteen_bit([[0, 2000], [4000, 4000]]), tmp_path / "set" / "b" / "bright.png")
    return f"folder:{tmp_path / 'set'}"


def test_intensity_set_keeps_brightness_relations(dim_and_bright):
    data = load_data(dim_and_bright)
    assert data.images[:, 0].tolist() == [[[0, 32], [64, 64]], [[0, 128], [255, 255]]]


def test_intensity_image_stretches_each_image(dim_and_bright):
    data = load_data(f"{dim_and_bright}?intensity=image")
    assert data.images[:, 0].tolist() == [[[0, 128], [255, 255]], [[0, 128], [255, 255]]]
    assert "each rescaled from its own min..max" in describe(data)


def test_intensity_full_uses_the_types_range(dim_and_bright):
    data = load_data(f"{dim_and_bright}?intensity=full")
    assert data.images[:, 0].tolist() == [[[0, 2], [4, 4]], [[0, 8], [16, 16]]]
    assert "16-bit images rescaled from 0..65535 to 0..255 (intensity=full" in describe(data)


def test_intensity_choices_never_look_like_the_same_data(tmp_path):
    """Even where two choices give equal pixels (the set spans 0..65535), description and fingerprint differ."""
    save(sixteen_bit([[0, 65535]]), tmp_path / "set" / "a" / "0.png")
    save(sixteen_bit([[0, 65535]]), tmp_path / "set" / "b" / "0.png")
    loaded = {choice: load_data(f"folder:{tmp_path / 'set'}?intensity={choice}") for choice in ("set", "image", "full")}
    assert all(np.array_equal(data.images, loaded["set"].images) for data in loaded.values())
    assert len({data.description for data in loaded.values()}) == 3
    assert len({data.fingerprint for data in loaded.values()}) == 3


def test_eight_bit_sets_keep_their_fingerprint():
    """The mapping enters the fingerprint only when there was one, so snapshots of 8-bit data stay valid."""
    assert load_data("builtin:digits").fingerprint == load_data("builtin:digits").fingerprint
    assert load_data("builtin:digits").pixel_mapping == ""


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_float_image_with_nan_or_infinity_is_refused_by_name(tmp_path, bad_value):
    save(Image.fromarray(np.array([[0.0, bad_value]], np.float32)), tmp_path / "set" / "a" / "scan.tif")
    save(Image.fromarray(np.array([[0.0, 1.0]], np.float32)), tmp_path / "set" / "b" / "ok.tif")
    with pytest.raises(GenaugError, match=r"'a/scan.tif' \(NaN or infinite values\)"):
        load_data(f"folder:{tmp_path / 'set'}")


def test_intensity_full_refuses_floats_outside_zero_to_one(tmp_path):
    save(Image.fromarray(np.array([[0.0, 2.5]], np.float32)), tmp_path / "set" / "a" / "hot.tif")
    save(Image.fromarray(np.array([[0.0, 1.0]], np.float32)), tmp_path / "set" / "b" / "ok.tif")
    with pytest.raises(GenaugError, match=r"'a/hot.tif' with 0..2.5 \(expected intensity=set or intensity=image"):
        load_data(f"folder:{tmp_path / 'set'}?intensity=full")


def test_one_mapping_for_every_split_folder(tmp_path):
    """train/ and test/ are mapped together, so a classifier sees the same brightness in both."""
    for split, top in (("train", 1000), ("test", 4000)):
        for name in ("a", "b"):
            save(sixteen_bit([[0, top]]), tmp_path / "set" / split / name / "0.png")
    assert load_data(f"folder:{tmp_path / 'set'}?split=train").images[0, 0].tolist() == [[0, 64]]
    assert load_data(f"folder:{tmp_path / 'set'}?split=test").images[0, 0].tolist() == [[0, 255]]


def test_resolution_resizes_after_mapping(tmp_path):
    """16-bit pixels are mapped first and resized as 8-bit ones are, so no value needs clipping."""
    ramp = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    spec = two_classes(tmp_path / "set", Image.fromarray(ramp))
    mapped = np.asarray(linear(ramp.astype(int).tolist(), 0, 63000), np.uint8)
    expected = np.asarray(Image.fromarray(mapped).resize((4, 4), Image.BICUBIC))
    assert np.array_equal(load_data(f"{spec}?resolution=4").images[0, 0], expected)


def test_constant_image_maps_to_zero(tmp_path):
    data = load_data(two_classes(tmp_path / "set", sixteen_bit(np.full((2, 2), 3000))))
    assert (data.images == 0).all() and "from 3000..3000" in describe(data)


@pytest.mark.parametrize("spec, why", [
    ("folder:x?intensity=bright", "intensity='bright' (expected set, image or full)"),
    ("folder:x?skip_bad=yes", "skip_bad='yes' (expected true or false)"),
    ("builtin:digits?intensity=image", "intensity applies to folder: sets only"),
])
def test_bad_intensity_and_skip_bad_options(spec, why):
    with pytest.raises(GenaugError, match=re.escape(why)):
        load_data(spec)
