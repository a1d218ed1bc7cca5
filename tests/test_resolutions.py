"""Models at 8 to 256 px, snapshots of the earlier sizes unchanged, and non-square images made square three ways.

Guards: gen_aug/models/layers.py, gen_aug/models/cgan.py, gen_aug/models/cvae.py, gen_aug/models/cdm.py,
    gen_aug/data/resizing.py, gen_aug/data/__init__.py
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from gen_aug.checkpoint import load_snapshot
from gen_aug.cli import main
from gen_aug.data import MODEL_SIDES, describe, load_data
from gen_aug.errors import GenaugError
from gen_aug.models import MODELS, build_model
from gen_aug.models.layers import MAX_RESOLUTION, MIN_RESOLUTION, level_widths

FAMILIES = sorted(MODELS)
# Keys and shapes of every network at 8, 28 and 64 px, recorded from the code before 128 and 256 px were added.
RECORDED = json.loads((Path(__file__).parent / "data" / "state_dict_shapes.json").read_text())


def run_cli(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def networks(family, config):
    """The sampling network and the one its trainer adds (discriminator or encoder), as snapshots and states hold them."""
    model = build_model(family, config)
    parts = model.trainer(num_images=100, device=torch.device("cpu")).parts
    return {"model": model, **{name: part for name, part in parts.items() if name in ("discriminator", "encoder")}}


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_networks_of_the_earlier_sizes_keep_their_keys_and_shapes(case):
    family, *options = case.split()
    config = {key: int(value) for key, value in (option.split("=") for option in options)}
    built = networks(family, config)
    assert sorted(built) == sorted(RECORDED[case])
    for name, network in built.items():
        shapes = {key: list(value.shape) for key, value in network.state_dict().items()}
        for part in getattr(network, "optional_parts", ()):  # a cvae's encoder: in its snapshots since variants
            held = {key: shape for key, shape in shapes.items() if key.startswith(f"{part}.")}
            assert {key.removeprefix(f"{part}."): shape for key, shape in held.items()} == RECORDED[case][part], part
            shapes = {key: shape for key, shape in shapes.items() if key not in held}
        assert shapes == RECORDED[case][name], name


def test_channels_halve_per_doubling_above_128_px_only():
    assert level_widths(32, 64) == {4: 128, 8: 128, 16: 128, 32: 64, 64: 32}  # as it always was
    assert level_widths(32, 128) == {4: 128, 8: 128, 16: 128, 32: 128, 64: 64, 128: 32}
    assert level_widths(32, 256) == {4: 128, 8: 128, 16: 128, 32: 128, 64: 64, 128: 32, 256: 16}
    assert level_widths(32, 200) == level_widths(32, 256)  # worked at 256, cropped back to 200
    assert min(level_widths(1, 256).values()) == 1


def test_the_data_side_knows_the_models_range():
    assert MODEL_SIDES == (MIN_RESOLUTION, MAX_RESOLUTION) == (8, 256)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("resolution", [7, 257, 512])
def test_resolutions_outside_8_to_256_are_refused_when_the_config_is_built(family, resolution):
    with pytest.raises(GenaugError, match=rf"resolution = {resolution} \(expected 8 to 256 pixels"):
        build_model(family, {"resolution": resolution, "channels": 1, "num_classes": 2})


@pytest.mark.parametrize("family", FAMILIES)
def test_256_px_builds_and_generates_an_image_of_that_size(family):
    config = {"resolution": 256, "channels": 3, "num_classes": 2, "width": 4, "z_dim": 8}
    built = networks(family, config | {"steps": 2} if family == "cdm" else config)
    model = built["model"].eval()
    labels = torch.tensor([1])
    with torch.no_grad():
        images = model.generate(torch.randn(1, model.z_dim, generator=torch.Generator().manual_seed(0)), labels)
        assert images.shape == (1, 3, 256, 256) and images.abs().max() <= 1
        if family == "cdm":  # no second network: the U-Net itself denoises the image it drew
            judged = model.denoise(images, torch.ones(1), labels)
        else:
            judged = built["discriminator" if family == "cgan" else "encoder"](images, labels)
    assert torch.isfinite(judged[0] if family == "cvae" else judged).all()


def write_noise_folder(root, shape, classes=("a", "b"), per_class=3):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / name / f"{index}.png")


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_trains_at_128_px_through_genaug_train_and_samples(tmp_path, family):
    write_noise_folder(tmp_path / "scans", (96, 128))  # landscape pictures, padded to a square
    job = tmp_path / "job.toml"
    job.write_text(
        f"[data]\nspec = 'folder:{tmp_path / 'scans'}?resolution=128&resize=pad'\n"
        f"[model]\nfamily = '{family}'\nwidth = 4\nz_dim = 8\n{'steps = 2' if family == 'cdm' else ''}\n"
        "[train]\nsteps = 2\nbatch_size = 2\nlog_every = 1\npreview_every = 2\npreview_per_class = 1\n"
    )
    result = run_cli("train", "--job", job, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    snapshot = load_snapshot(tmp_path / "run" / "model.safetensors")
    assert snapshot.meta["steps"] == 2 and snapshot.meta["resolution"] == 128
    assert snapshot.meta["data"]["description"].endswith("resolution=128&resize=pad")
    with torch.no_grad():
        images = snapshot.model.generate(torch.randn(2, snapshot.model.z_dim), torch.tensor([0, 1]))
    assert images.shape == (2, 1, 128, 128)
    result = run_cli("sample", "--model", tmp_path / "run" / "model.safetensors", "--per-class", 2,
                     "--out", tmp_path / "grid.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "grid.png").size[1] >= 2 * 128  # a row per class


# --- resize=stretch|crop|pad ---------------------------------------------------------------------


def marked_folder(root, height, width, channels=1):
    """Two classes of one picture each: mid-grey, one white pixel at (5, 15), columns 0..9 at 30."""
    shape = (height, width, 3) if channels == 3 else (height, width)
    picture = np.full(shape, 128, np.uint8)
    picture[:, :10] = 30
    picture[5, 15] = 255
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        Image.fromarray(picture).save(root / name / "0.png")
    return f"folder:{root}"


def test_crop_keeps_the_centre_square(tmp_path):
    spec = marked_folder(tmp_path, 20, 40)  # columns 10..29 are the centre square
    data = load_data(f"{spec}?resolution=20&resize=crop")
    assert data.images.shape == (2, 1, 20, 20)
    assert data.images[0, 0, 5, 5] == 255 and (data.images[0, 0, :, 0] == 128).all()  # the dark columns are cut
    assert int(data.images[0].astype(int).sum()) == 20 * 20 * 128 + 127


def test_pad_adds_black_above_and_below(tmp_path):
    spec = marked_folder(tmp_path, 20, 40, channels=3)  # 10 black rows above, 10 below
    data = load_data(f"{spec}?resolution=40&resize=pad")
    assert data.images.shape == (2, 3, 40, 40)
    assert data.images[0, :, 15, 15].tolist() == [255, 255, 255]
    assert (data.images[:, :, :10] == 0).all() and (data.images[:, :, 30:] == 0).all()
    assert (data.images[0, :, 10:30, :10] == 30).all()


def test_stretch_is_the_default_and_squeezes_the_width(tmp_path):
    spec = marked_folder(tmp_path, 20, 40)
    data = load_data(f"{spec}?resolution=20")
    assert data.images.shape == (2, 1, 20, 20) and data.description.endswith("resolution=20")
    # The dark quarter of the width is now columns 0..4; the filter blends columns 3..6 across the edge.
    assert (data.images[0, 0, 10:, :3] == 30).all() and (data.images[0, 0, 10:, 7:] == 128).all()
    assert np.array_equal(data.images, load_data(f"{spec}?resolution=20&resize=stretch").images)


def test_downscaled_crop_lands_the_mark_in_proportion(tmp_path):
    root = tmp_path / "set"
    for name in ("a", "b"):
        picture = np.zeros((64, 128), np.uint8)
        picture[8:24, 40:56] = 255  # a 16 px square in the top-left quarter of the centre square (32..95)
        (root / name).mkdir(parents=True)
        Image.fromarray(picture).save(root / name / "0.png")
    data = load_data(f"folder:{root}?resolution=32&resize=crop")
    assert data.images.shape == (2, 1, 32, 32)
    assert (data.images[0, 0, 5:11, 5:11] >= 250).all()  # rows 8..23, columns 8..23 of the square, halved
    assert (data.images[0, 0, 16:, :] <= 5).all() and (data.images[0, 0, :, 16:] <= 5).all()


def test_arrays_are_squared_the_same_way(tmp_path):
    """npz and idx images are resized after loading, not while decoding: the same three modes apply."""
    pictures = np.full((4, 20, 40), 128, np.uint8)
    pictures[:, 5, 15] = 255
    path = tmp_path / "set.npz"
    np.savez(path, train_images=pictures, train_labels=np.array([0, 1, 0, 1]))
    cropped = load_data(f"npz:{path}?resolution=20&resize=crop")
    padded = load_data(f"npz:{path}?resolution=40&resize=pad")
    assert cropped.images.shape == (4, 1, 20, 20) and cropped.images[0, 0, 5, 5] == 255
    assert padded.images.shape == (4, 1, 40, 40) and padded.images[0, 0, 15, 15] == 255
    assert "4 not square, centre-cropped to a square first (resize=crop)" in describe(cropped)


def test_describe_and_fingerprint_say_which_resize_was_applied(tmp_path):
    spec = marked_folder(tmp_path, 20, 40)
    loaded = {mode: load_data(f"{spec}?resolution=16&resize={mode}") for mode in ("stretch", "crop", "pad")}
    assert loaded["stretch"].description.endswith("?split=train&resolution=16")
    assert loaded["crop"].description.endswith("?split=train&resolution=16&resize=crop")
    assert len({data.fingerprint for data in loaded.values()}) == 3
    texts = {mode: describe(data) for mode, data in loaded.items()}
    assert "loading      resized 2 image(s) to 16x16; 2 not square, stretched (resize=crop or resize=pad" in texts["stretch"]
    assert "2 not square, centre-cropped to a square first (resize=crop)" in texts["crop"]
    assert "2 not square, padded to a square with black first (resize=pad)" in texts["pad"]
    square = tmp_path / "square"
    marked_folder(square, 20, 20)
    assert "loading      resized 2 image(s) to 16x16\n" in describe(load_data(f"folder:{square}?resolution=16"))


def test_data_command_says_the_models_sizes_when_the_images_do_not_fit(tmp_path):
    write_noise_folder(tmp_path / "wide", (20, 40), per_class=1)
    write_noise_folder(tmp_path / "large", (300, 300), per_class=1)
    hint = "training     the models take square images of 8 to 256 px: add ?resolution=R"
    wide = run_cli("data", f"folder:{tmp_path / 'wide'}")
    assert wide.exit_code == 0 and f"{hint}; resize=crop or resize=pad keeps the aspect ratio" in wide.output
    assert hint in run_cli("data", f"folder:{tmp_path / 'large'}").output
    assert "training " not in run_cli("data", f"folder:{tmp_path / 'large'}?resolution=256").output


@pytest.mark.parametrize(
    "query,message",
    [
        ("resolution=32&resize=fit", "resize='fit' (expected stretch, crop or pad)"),
        ("resize=crop", "resize=crop says how resolution=R squares the images (expected resolution=R too"),
    ],
)
def test_bad_resize_options_are_one_line_errors(tmp_path, query, message):
    spec = marked_folder(tmp_path, 20, 40)
    result = run_cli("data", f"{spec}?{query}")
    assert result.exit_code == 1 and result.output.count("\n") == 1 and message in result.output, result.output
