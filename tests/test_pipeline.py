"""`genaug run`: train, synthesize, evaluate; a stage whose output is complete is skipped, a changed one reruns with those after it.

Guards: gen_aug/pipeline.py, gen_aug/estimate.py, gen_aug/units.py
"""

import json

import pytest
from click.testing import CliRunner

from gen_aug.cli import main
from gen_aug.config import load_job
from gen_aug.errors import GenaugError
from gen_aug.output.manifest import MANIFEST
from gen_aug.output.verification import verify
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


def test_dry_run_prints_each_stage_s_work_and_time_and_starts_none(tmp_path):
    path = write_job(tmp_path)
    result = CliRunner().invoke(main, ["run", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"dry run of {tmp_path / 'run'}: nothing is trained, synthesized or written"
    assert lines[1].startswith("train       20 steps of a cgan on 300 images; about ")
    assert lines[2].startswith("synthesize  200 images; about ")
    assert lines[3].startswith("evaluate    5 classifier runs of 20 steps, 1 at once; about ")  # 4 arms + TSTR, 1 seed
    assert lines[4].startswith("in all      about ") and lines[4].endswith(" if every stage runs")
    assert not (tmp_path / "run").exists()


def test_dry_run_of_a_variants_grid_counts_every_output_and_every_validation_run(tmp_path):
    from gen_aug.pipeline import dry_run

    path = tmp_path / "job.toml"
    path.write_text(JOB.format(run=tmp_path / "run", width=4, steps=20, n=200, mix_ratio=1.0).replace(
        "min_confidence = 0.0", 'variants_of = "builtin:digits?limit_per_class=30"\nper_image = 2').replace(
        'family = "cgan"', 'family = "cdm"\nsteps = 4').replace("z_dim = 8\n", "").replace(
        "n = 200\n", "").replace("mix_ratio = 1.0", 'arms = ["real", "classical", "variants"]\n'
                                                   'tune = {strength = [0.3, 0.6]}'))
    lines = dry_run(load_job(path))
    assert lines[2].startswith("synthesize  1,200 images; about ")  # 300 sources x 2 variants, at 2 strengths
    assert lines[3].startswith("evaluate    6 classifier runs of 20 steps")  # 3 arms + TSTR, and variants at 2 points
    assert not (tmp_path / "run").exists()


def test_durations_read_at_a_glance():
    from gen_aug.units import duration

    assert [duration(s) for s in (0.4, 89, 90, 725, 5399, 5400, 9000)] == \
        ["0 s", "89 s", "2 min", "12 min", "90 min", "1.5 h", "2.5 h"]
