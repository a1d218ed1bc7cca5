"""`genaug run`: train, synthesize, evaluate; a stage whose output is complete is skipped, a changed one reruns with those after it."""

import json

import pytest
from click.testing import CliRunner

from gen_aug.cli import main
from gen_aug.config import load_job
from gen_aug.errors import GenaugError
from gen_aug.synthesis.manifest import MANIFEST
from gen_aug.synthesis.verify import verify
from gen_aug.pipeline import run_job

pytestmark = pytest.mark.ray

JOB = """
[data]
spec = "builtin:digits?limit_per_class=30"

[model]
family = "cgan"
width = {width}
z_dim = 8

[train]
out = "{run}"
steps = {steps}
batch_size = 16
device = "cpu"
log_every = 10
preview_every = 100
checkpoint_every = 100

[synthesize]
n = {n}
shard_size = 100
workers = 1
min_confidence = 0.0

[evaluate]
seeds = [0]
steps = 20
sample_size = 100
mix_ratio = {mix_ratio}
"""


def write_job(tmp_path, width=4, steps=20, n=200, mix_ratio=1.0):
    path = tmp_path / "job.toml"
    path.write_text(JOB.format(run=tmp_path / "run", width=width, steps=steps, n=n, mix_ratio=mix_ratio))
    return path


def actions(path) -> list[str]:
    stages, _, _ = run_job(load_job(path), echo=lambda message: None)
    return [stage.action for stage in stages]


def test_complete_stages_are_skipped_and_changed_ones_rerun(ray_local, private_classifier_cache, tmp_path):
    run = tmp_path / "run"
    assert actions(write_job(tmp_path)) == ["ran", "ran", "ran"]
    report = json.loads((run / "report" / "report.json").read_text())
    assert report["data"]["real_train"]["images"] == 300 and report["data"]["real_test"]["images"] == 355
    assert verify(str(run / "synth")).ok
    manifest_bytes = (run / "synth" / MANIFEST).read_bytes()

    assert actions(write_job(tmp_path)) == ["skipped", "skipped", "skipped"]
    assert (run / "synth" / MANIFEST).read_bytes() == manifest_bytes

    assert actions(write_job(tmp_path, mix_ratio=0.5)) == ["skipped", "skipped", "ran"]
    assert json.loads((run / "report" / "report.json").read_text())["settings"]["mix_ratio"] == 0.5

    assert actions(write_job(tmp_path, n=300, mix_ratio=0.5)) == ["skipped", "ran", "ran"]
    assert json.loads((run / "synth" / MANIFEST).read_text())["totals"]["images"] == 300

    assert actions(write_job(tmp_path, steps=30, n=300, mix_ratio=0.5)) == ["resumed", "ran", "ran"]
    manifest = json.loads((run / "synth" / MANIFEST).read_text())
    assert manifest["snapshot"]["meta"]["steps"] == 30 and verify(str(run / "synth")).ok

    result = CliRunner().invoke(main, ["run", str(write_job(tmp_path, steps=30, n=300, mix_ratio=0.5))])
    assert result.exit_code == 0, result.output
    assert [line.split()[:2] for line in result.output.splitlines()[1:4]] == [
        ["train", "skipped"], ["synthesize", "skipped"], ["evaluate", "skipped"]
    ]
    assert any(line.startswith("synthetic ") for line in result.output.splitlines())
    assert any(line.startswith("verdict ") for line in result.output.splitlines())


def test_a_run_folder_holding_another_model_is_refused(ray_local, private_classifier_cache, tmp_path):
    assert actions(write_job(tmp_path, steps=10)) == ["ran", "ran", "ran"]
    snapshot = (tmp_path / "run" / "model.safetensors").read_bytes()
    with pytest.raises(GenaugError, match="width=4 .*expected the job's \\[model\\]"):
        actions(write_job(tmp_path, width=8, steps=10))
    with pytest.raises(GenaugError, match="already has 10 steps"):
        actions(write_job(tmp_path, steps=5))
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == snapshot
