"""The training loop and the train/sample commands, on tiny models and a few steps of real data.

Guards: gen_aug/train.py, gen_aug/grid.py, gen_aug/cli.py
"""

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from gen_aug.checkpoint import load_snapshot
from gen_aug.cli import main
from gen_aug.config import TrainConfig
from gen_aug.data import load_data
from gen_aug.errors import GenaugError
from gen_aug.models import MODELS
from gen_aug.train import load_state, read_log, train

TINY = {"width": 4, "z_dim": 8}
TINY_JOB = """
[data]
spec = "builtin:digits?limit_per_class=6"
[model]
family = "cgan"
width = 4
z_dim = 8
[train]
steps = 4
batch_size = 8
log_every = 2
preview_every = 4
preview_per_class = 3
"""


def sample(model, labels, generator):
    """Images of `labels` from latents drawn from `generator`."""
    return model.generate(torch.randn(len(labels), model.z_dim, generator=generator), labels)


@pytest.fixture(scope="module")
def digits():
    return load_data("builtin:digits?limit_per_class=6")  # 60 images of 8x8, 10 classes


def settings(tmp_path, name="run", **change):
    values = dict(out=str(tmp_path / name), steps=6, batch_size=8, log_every=1, preview_every=3, checkpoint_every=3, preview_per_class=2)
    return TrainConfig(**(values | change))


def losses_of(out):
    return [{k: v for k, v in line.items() if k not in ("interval_images_per_sec", "seconds")} for line in read_log(out / "log.jsonl")]


@pytest.mark.parametrize("family", sorted(MODELS))
def test_training_writes_snapshot_state_log_and_previews(tmp_path, digits, family):
    summary = train(digits, family, TINY, settings(tmp_path), show_progress=False)
    out = tmp_path / "run"
    assert sorted(p.name for p in out.iterdir()) == [
        "log.jsonl", "model.safetensors", "preview_000003.png", "preview_000006.png", "train_state.pt"
    ]
    snapshot = load_snapshot(out / "model.safetensors")
    assert snapshot.meta["steps"] == 6 and snapshot.meta["family"] == family
    assert snapshot.meta["data"] == {"description": digits.description, "fingerprint": digits.fingerprint}
    assert snapshot.meta["class_names"] == list(digits.class_names)
    log = read_log(out / "log.jsonl")
    assert [line["step"] for line in log] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(value) for line in log for value in line.values())
    assert summary.steps == 6 and summary.preview == out / "preview_000006.png"
    assert Image.open(summary.preview).size[1] >= 10 * 2 * 8  # a row per class, enlarged


@pytest.mark.parametrize("family", sorted(MODELS))
def test_same_seed_same_model_other_seed_other_model(tmp_path, digits, family):
    runs = [train(digits, family, TINY, settings(tmp_path, name, seed=seed), show_progress=False) for name, seed in
            (("a", 1), ("b", 1), ("c", 2))]
    shas = [load_snapshot(run.out / "model.safetensors").sha256 for run in runs]
    assert shas[0] == shas[1] != shas[2]
    assert losses_of(runs[0].out) == losses_of(runs[1].out)


@pytest.mark.parametrize("family", sorted(MODELS))
def test_resume_continues_exactly(tmp_path, digits, family):
    train(digits, family, TINY, settings(tmp_path, "whole"), show_progress=False)
    train(digits, family, TINY, settings(tmp_path, "parts", steps=3), show_progress=False)
    # A run that died after step 4: the state says 3, the log says 4; the resumed log must not repeat step 4.
    with open(tmp_path / "parts" / "log.jsonl", "a") as stream:
        stream.write(json.dumps({"step": 4, "loss": 0.0}) + '\n{"step": 5, "lo')  # the last line cut short
    summary = train(digits, family, TINY, settings(tmp_path, "parts"), resume=True, show_progress=False)
    assert summary.first_step == 3
    assert losses_of(tmp_path / "parts") == losses_of(tmp_path / "whole")
    whole, parts = (load_snapshot(tmp_path / name / "model.safetensors") for name in ("whole", "parts"))
    assert whole.sha256 == parts.sha256


def test_an_existing_model_is_never_overwritten(tmp_path, digits):
    train(digits, "cgan", TINY, settings(tmp_path, steps=2), show_progress=False)
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    with pytest.raises(GenaugError, match=r"already holds a trained model .*pass --resume"):
        train(digits, "cgan", TINY, settings(tmp_path, steps=2), show_progress=False)
    with pytest.raises(GenaugError, match=r"already has 2 steps \(expected --steps above 2\)"):
        train(digits, "cgan", TINY, settings(tmp_path, steps=2), resume=True, show_progress=False)
    other = load_data("builtin:digits?limit_per_class=7")
    with pytest.raises(GenaugError, match=r"was trained on other data"):
        train(other, "cgan", TINY, settings(tmp_path, steps=4), resume=True, show_progress=False)
    with pytest.raises(GenaugError, match=r"trained a cgan .*expected the same model"):
        train(digits, "cgan", {"width": 5, "z_dim": 8}, settings(tmp_path, steps=4), resume=True, show_progress=False)
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before


def test_a_fresh_run_starts_a_fresh_log(tmp_path, digits):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "log.jsonl").write_text('{"step": 1, "loss_d": 9}\n{"step": 2, "loss_d": 9}\n')  # died early
    train(digits, "cgan", TINY, settings(tmp_path, steps=2), show_progress=False)
    assert [line["loss_d"] != 9 for line in read_log(tmp_path / "run" / "log.jsonl")] == [True, True]


def test_resume_needs_a_state(tmp_path, digits):
    with pytest.raises(GenaugError, match=r"no train_state.pt to resume from"):
        train(digits, "cgan", TINY, settings(tmp_path), resume=True, show_progress=False)


def test_single_class_data_is_refused(tmp_path, digits):
    with pytest.raises(GenaugError, match=r"images of 1 class \(expected 2 or more"):
        train(digits.select(digits.labels == 3), "cgan", TINY, settings(tmp_path), show_progress=False)


class Exploit:
    """Unpickling this creates a file: proof that pickled code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_malicious_resume_state_never_runs(tmp_path, digits):
    train(digits, "cgan", TINY, settings(tmp_path, steps=2), show_progress=False)
    marker = tmp_path / "pwned"
    state_path = tmp_path / "run" / "train_state.pt"
    torch.save({"format_version": 1, "step": Exploit(str(marker))}, state_path)
    with open(tmp_path / "plain.pkl", "wb") as stream:  # the same payload does run when unpickled plainly
        pickle.dump(Exploit(str(tmp_path / "control")), stream)
    with open(tmp_path / "plain.pkl", "rb") as stream:
        pickle.load(stream).close()
    assert (tmp_path / "control").exists()
    with pytest.raises(GenaugError, match=r"train_state.pt: not a readable genaug train state"):
        train(digits, "cgan", TINY, settings(tmp_path, steps=4), resume=True, show_progress=False)
    with pytest.raises(GenaugError):
        load_state(state_path, torch.device("cpu"))
    assert not marker.exists()


def run_cli(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    (folder / "tiny.toml").write_text(TINY_JOB)
    result = run_cli("train", "--job", folder / "tiny.toml", "--out", folder / "run", "--seed", 3)
    assert result.exit_code == 0, result.output
    return folder


def test_cli_train_prints_a_summary(trained):
    result = load_snapshot(trained / "run" / "model.safetensors")
    assert result.meta["steps"] == 4 and result.meta["seed"] == 3 and result.model.z_dim == 8
    assert (trained / "run" / "preview_000004.png").exists()


def test_cli_train_refuses_an_existing_run_then_resumes(trained, tmp_path):
    job = trained / "tiny.toml"
    result = run_cli("train", "--job", job, "--out", trained / "run", "--seed", 3)
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "already holds a trained model" in result.output
    result = run_cli("train", "--job", job, "--out", trained / "run", "--seed", 3, "--steps", 6, "--resume")
    assert result.exit_code == 0, result.output
    assert "resumed at step 4" in result.output and load_snapshot(trained / "run" / "model.safetensors").meta["steps"] == 6


def test_cli_train_says_what_it_trains_and_roughly_how_long_first(digits, tmp_path):
    job = tmp_path / "tiny.toml"
    job.write_text(TINY_JOB)
    result = run_cli("train", "--job", job, "--out", tmp_path / "cli", "--seed", 3)
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"steps +4 steps of a cgan on 60 images, 8 per step; roughly [0-9.]+ s here",
                        result.stderr.splitlines()[0]), result.stderr
    # The timed steps ran on a copy: the model is the one a run without the line trains.
    quiet = settings(tmp_path, "quiet", steps=4, seed=3, log_every=2, preview_every=4, preview_per_class=3)
    train(digits, "cgan", TINY, quiet, show_progress=False)
    assert (tmp_path / "cli" / "model.safetensors").read_bytes() == (tmp_path / "quiet" / "model.safetensors").read_bytes()


@pytest.mark.parametrize("interpolate", [False, True])
def test_cli_sample_draws_a_row_per_class(trained, tmp_path, interpolate):
    out = tmp_path / "grid.png"
    flags = ["--interpolate"] if interpolate else []
    result = run_cli("sample", "--model", trained / "run" / "model.safetensors", "--per-class", 5, "--out", out, *flags)
    assert result.exit_code == 0, result.output
    grid = np.asarray(Image.open(out).convert("L"))
    assert grid.shape[0] == 10 * (48 + 2) and grid.shape[1] > 5 * (48 + 2)
    again = tmp_path / "again.png"
    run_cli("sample", "--model", trained / "run" / "model.safetensors", "--per-class", 5, "--out", again, *flags)
    assert out.read_bytes() == again.read_bytes()


def test_interpolation_ends_at_the_two_seeds(trained):
    from gen_aug.grid import interpolation_rows
    from gen_aug.images import to_uint8

    model = load_snapshot(trained / "run" / "model.safetensors").model
    walk = interpolation_rows(model, 4, seed=5).reshape(10, 4, 1, 8, 8)
    labels = torch.arange(10)
    for column, seed in ((0, 5), (-1, 6)):
        z = torch.randn(1, 8, generator=torch.Generator().manual_seed(seed)).repeat(10, 1)
        expected = to_uint8(model.generate(z, labels)).numpy()
        assert np.abs(walk[:, column].astype(int) - expected).max() <= 1  # slerp end points up to rounding
    assert not np.array_equal(walk[:, 1], walk[:, 0])


def _truncated(folder):
    payload = (folder / "run" / "model.safetensors").read_bytes()
    (folder / "cut.safetensors").write_bytes(payload[: len(payload) // 2])
    return folder / "cut.safetensors"


def _not_safetensors(folder):
    (folder / "notes.safetensors").write_text("just text")
    return folder / "notes.safetensors"


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda folder: folder / "missing.safetensors", r"no such file"),
        (_truncated, r"or truncated"),
        (_not_safetensors, r"not a"),
    ],
)
def test_cli_sample_bad_snapshots_are_one_line_errors(trained, tmp_path, make, message):
    result = run_cli("sample", "--model", make(trained), "--out", tmp_path / "g.png")
    assert result.exit_code == 1 and result.output.startswith("Error: snapshot ") and result.output.count("\n") == 1
    assert re.search(message, result.output)
    assert not (tmp_path / "g.png").exists()


def _one_class_folder(tmp_path):
    (tmp_path / "only").mkdir()
    for index in range(3):
        Image.fromarray(np.full((8, 8), index * 50, dtype=np.uint8)).save(tmp_path / "only" / f"{index}.png")
    return f"folder:{tmp_path}"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "cgn"], "Error: unknown model 'cgn'; choose from cdm, cgan, cvae"),
        (["--data", "builtin:digits?resolution=4&limit_per_class=2"], "Error: model cgan: resolution = 4 (expected 8 to 256"),
        (["--data", "builtin:digits?resolution=512&limit_per_class=2"], "Error: model cgan: resolution = 512 (expected 8 to 256"),
        (["--data", "one-class"], "(expected 2 or more labelled classes)"),
    ],
)
def test_cli_train_bad_inputs_are_one_line_errors(tmp_path, args, message):
    args = [_one_class_folder(tmp_path) if arg == "one-class" else arg for arg in args]
    result = run_cli("train", "--out", tmp_path / "run", "--steps", 1, *args)
    assert result.exit_code == 1 and message in result.output and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "run").exists()


def test_cli_train_zero_steps_is_a_usage_error(tmp_path):
    result = run_cli("train", "--out", tmp_path / "run", "--steps", 0)
    assert result.exit_code == 2 and result.output.strip() == "Error: genaug train: Invalid value for '--steps': 0 is not in the range x>=1. (see 'genaug train --help')"
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cli_train_cuda_without_a_gpu(tmp_path):
    result = run_cli("train", "--out", tmp_path / "run", "--device", "cuda", "--data", "builtin:digits?limit_per_class=2")
    assert result.exit_code == 1 and "Error: --device cuda: no CUDA device is visible" in result.output


BREASTMNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "breastmnist" / "breastmnist.npz"


@pytest.mark.skipif(not BREASTMNIST.is_file(), reason="../shared/data is absent")
@pytest.mark.parametrize("family", sorted(MODELS))
def test_28_pixel_real_images_train_and_sample_at_28(tmp_path, family):
    data = load_data(f"npz:{BREASTMNIST}?split=train&limit_per_class=4")
    train(data, family, TINY, settings(tmp_path, steps=2, batch_size=4), show_progress=False)
    model = load_snapshot(tmp_path / "run" / "model.safetensors").model
    images = sample(model, torch.tensor([0, 1]), torch.Generator().manual_seed(0))
    assert images.shape == (2, 1, 28, 28)


def test_cli_train_without_out_says_how_to_give_it(tmp_path):
    result = run_cli("train", "--data", "builtin:digits?limit_per_class=2", "--steps", 1)
    assert result.exit_code == 1 and "Error: --out: missing (expected --out DIR" in result.output
