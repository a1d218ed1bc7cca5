"""`--restore`: synthetic images written back at the size and depth of the pictures the model learnt.

Guards: gen_aug/data/form.py, gen_aug/data/folder.py, gen_aug/data/__init__.py, gen_aug/checkpoint.py,
gen_aug/synthesis/options.py, gen_aug/synthesis/driver.py, gen_aug/output/plan.py,
gen_aug/output/encoding.py, gen_aug/output/reader.py"""

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gen_aug.cli import main
from gen_aug.data import load_data
from gen_aug.data.form import SourceForm
from gen_aug.output.reader import load_synthetic
from gen_aug.output.verification import verify

HEIGHT, WIDTH = 80, 96  # an X-ray wider than high, as the users' 96x80 ones
LOW, HIGH = 1000, 4000  # a 12-bit scanner's values in a 16-bit PNG


def xray(seed: int) -> np.ndarray:
    """A smooth 16-bit picture spanning LOW..HIGH over the set: what a down- and up-sampling keeps."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    phase = seed * 0.7
    wave = np.sin(rows / 13 + phase) * np.cos(cols / 17 - phase)  # -1..1, a few periods across the picture
    return np.round(LOW + (wave + 1) / 2 * (HIGH - LOW)).astype(np.uint16)


@pytest.fixture(scope="module")
def xrays(tmp_path_factory):
    root = tmp_path_factory.mktemp("xrays")
    for name, seeds in (("normal", range(0, 6)), ("pneumonia", range(6, 12))):
        (root / name).mkdir()
        for seed in seeds:
            Image.fromarray(xray(seed)).save(root / name / f"{seed:02d}.png")
    return root


def test_loading_records_the_pictures_own_size_and_range(xrays):
    data = load_data(f"folder:{xrays}?resolution=32&resize=pad")
    assert data.shape == (1, 32, 32)
    assert data.form == SourceForm(HEIGHT, WIDTH, 32, "pad", "16-bit", LOW, HIGH)
    assert data.form.problem() is None
    assert data.form.describe() == f"{HEIGHT}x{WIDTH} (height x width), 16-bit from {LOW}..{HIGH}, padding cut off"
    # A set read at its own size records no resize; a subset keeps its set's form.
    assert load_data("builtin:digits").form == SourceForm(8, 8)
    assert data.select(np.arange(3)).form == data.form


def test_a_loaded_picture_comes_back_at_its_size_and_depth_within_the_8_bit_error(xrays):
    """The round trip a perfect generator would make: down to 8-bit 32x32 with pad bands, and back."""
    data = load_data(f"folder:{xrays}?resolution=32&resize=pad")
    originals = [np.asarray(Image.open(xrays / name / f"{seed:02d}.png"))
                 for name, seeds in (("normal", range(6)), ("pneumonia", range(6, 12)))
                 for rank, seed in enumerate(seeds) if rank % 5 != 4]  # the train split: ranks 4, 9, ... are test
    assert len(originals) == len(data.images)
    one_step = (HIGH - LOW) / 255
    for image, original in zip(data.images, originals):
        back = data.form.restored(image)
        assert back.shape == (HEIGHT, WIDTH) and back.dtype == np.uint16
        error = np.abs(back.astype(np.int64) - original.astype(np.int64))
        # Inside, where no pad band was blurred in, within one 8-bit step: the geometry is the source's (a band
        # squeezed in, or a shift of one row, would miss these waves by many steps).
        assert error[6:-6].mean() < one_step, error[6:-6].mean()
        # The rows the downsampling blurred into the black band stay darker: a few steps on average over all.
        assert error.mean() < 4 * one_step, error.mean()


def test_restoring_is_refused_where_there_is_no_one_way_back(xrays, tmp_path):
    per_image = load_data(f"folder:{xrays}?resolution=32&resize=pad&intensity=image").form
    assert "intensity=image" in per_image.problem()
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "a" / "0.png")
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(tmp_path / "b" / "0.png")
    mixed = load_data(f"folder:{tmp_path}?resolution=8").form
    assert mixed.height is None and "several sizes" in mixed.problem()


def test_a_stretched_8_bit_set_comes_back_at_its_size(tmp_path):
    form = SourceForm(10, 20, 8, "stretch")
    back = form.restored(np.full((1, 8, 8), 200, np.uint8))
    assert back.shape == (10, 20) and back.dtype == np.uint8 and np.all(back == 200)
    colour = form.restored(np.full((3, 8, 8), 90, np.uint8))
    assert colour.shape == (10, 20, 3) and np.all(colour == 90)


def run_cli(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def xray_model(xrays, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    result = run_cli("train", "--data", f"folder:{xrays}?resolution=16&resize=pad", "--model", "cgan",
                     "--out", run, "--steps", 2, "--batch-size", 4)
    assert result.exit_code == 0, result.output
    return run / "model.safetensors"


def test_synthesize_restore_writes_16_bit_pngs_at_the_source_size(ray_local, xray_model, tmp_path):
    out = tmp_path / "out"
    result = run_cli("synthesize", "--model", xray_model, "--n", 6, "--workers", 1, "--format", "png", "--restore",
                     "--out", out)
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*/*.png"))
    assert len(files) == 6
    for file in files:
        picture = Image.open(file)
        assert picture.mode == "I;16" and picture.size == (WIDTH, HEIGHT)
        pixels = np.asarray(picture)
        assert pixels.max() > 255  # mapped back through LOW..HIGH, not left 8-bit
    assert verify(str(out)).ok
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["plan"]["restore"]["height"] == HEIGHT and manifest["plan"]["restore"]["low"] == LOW
    # Resume compares the plan, restore included: the same command keeps every shard, one without it is refused.
    again = run_cli("synthesize", "--model", xray_model, "--n", 6, "--workers", 1, "--format", "png", "--restore",
                    "--out", out, "--resume")
    assert again.exit_code == 0, again.output
    other = run_cli("synthesize", "--model", xray_model, "--n", 6, "--workers", 1, "--format", "png", "--out", out,
                    "--resume")
    assert other.exit_code == 1 and other.output.count("\n") == 1, other.output
    # Evaluation takes images at the model's size; a restored output says so in one line.
    with pytest.raises(Exception, match="written with --restore at 80x96"):
        load_synthetic(out)


def test_restore_in_parquet_holds_the_same_pngs(ray_local, xray_model, tmp_path):
    import pyarrow.parquet as pq

    result = run_cli("synthesize", "--model", xray_model, "--n", 4, "--workers", 1, "--restore", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    table = pq.read_table(next((tmp_path / "data").glob("*.parquet")))
    picture = Image.open(io.BytesIO(table.column("image")[0].as_py()["bytes"]))
    assert picture.mode == "I;16" and picture.size == (WIDTH, HEIGHT)


@pytest.mark.parametrize("args, expected", [
    (["--format", "raw", "--restore"], "Error: --restore with --format raw: raw shards hold the model's uint8 pixels"),
])
def test_restore_bad_inputs_are_one_line(xray_model, tmp_path, args, expected):
    result = run_cli("synthesize", "--model", xray_model, "--n", 4, "--out", tmp_path / "out", *args)
    assert result.exit_code == 1 and result.output.count("\n") == 1 and result.output.startswith(expected), result.output
    assert not (tmp_path / "out").exists()


def test_restore_of_a_model_whose_data_changed_is_refused(xrays, tmp_path):
    import shutil

    copy = tmp_path / "xrays"
    shutil.copytree(xrays, copy)
    run = tmp_path / "run"
    result = run_cli("train", "--data", f"folder:{copy}?resolution=16&resize=pad", "--model", "cgan", "--out", run,
                     "--steps", 1, "--batch-size", 4)
    assert result.exit_code == 0, result.output
    Image.fromarray(xray(99)).save(copy / "normal" / "00.png")
    result = run_cli("synthesize", "--model", run / "model.safetensors", "--n", 4, "--restore",
                     "--out", tmp_path / "out")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "reads other images today than it did then" in result.output


def test_restore_of_a_set_mapped_picture_by_picture_is_one_line(xrays, tmp_path):
    run = tmp_path / "run"
    result = run_cli("train", "--data", f"folder:{xrays}?resolution=16&resize=pad&intensity=image", "--model", "cgan",
                     "--out", run, "--steps", 1, "--batch-size", 4)
    assert result.exit_code == 0, result.output
    result = run_cli("synthesize", "--model", run / "model.safetensors", "--n", 4, "--restore", "--out", tmp_path / "out")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "cannot be restored to: intensity=image mapped each picture from its own range" in result.output
    assert not (tmp_path / "out").exists()
