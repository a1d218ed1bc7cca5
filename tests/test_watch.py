"""Long work one can watch: the training bar's rate is the summary's, every worker gets shards, a long shard shows
its progress before it lands, synthesis tells its plan (and refuses one its disk cannot hold) before it starts,
and CUDA asked for where there is none is one line.

Guards: gen_aug/train.py, gen_aug/output/plan.py, gen_aug/synthesis/scheduler.py, gen_aug/synthesis/shard_bar.py,
    gen_aug/synthesis/footprint.py, gen_aug/synthesis/driver.py, gen_aug/pipeline.py
"""

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest
import torch
from click.testing import CliRunner

from gen_aug.cli import main
from gen_aug.config import TrainConfig, load_job
from gen_aug.data import load_data
from gen_aug.pipeline import _synthesize_stage
from gen_aug.synthesis.driver import synthesize
from gen_aug.output.manifest import MANIFEST
from gen_aug.synthesis.options import SynthesisOptions
from gen_aug.output.plan import automatic_shard_size
from gen_aug.synthesis.scheduler import JOIN_GRACE_S
from gen_aug.train import read_log, train


def test_the_training_bar_ends_on_the_summary_s_rate(tmp_path):
    settings = TrainConfig(out=str(tmp_path / "run"), steps=12, batch_size=8, device="cpu", log_every=4,
                           preview_every=6, checkpoint_every=6, preview_per_class=2)
    stream = io.StringIO()
    with contextlib.redirect_stderr(stream):  # tqdm writes to sys.stderr as it is when the bar is made
        summary = train(load_data("builtin:digits?limit_per_class=6"), "cgan", {"width": 4, "z_dim": 8}, settings)
    rates = [float(rate) for rate in re.findall(r"img/s=([0-9.]+)", stream.getvalue())]
    assert rates, stream.getvalue()
    assert abs(rates[-1] - summary.images_per_sec) <= max(1.0, 0.01 * summary.images_per_sec), (rates, summary)
    log = read_log(tmp_path / "run" / "log.jsonl")
    assert [line["step"] for line in log] == [4, 8, 12]
    assert all(line["interval_images_per_sec"] > 0 and "images_per_sec" not in line for line in log)


@pytest.mark.parametrize("n, workers, shard_size", [
    (1_000, 2, 250),  # two shards per worker
    (10**6, 4, 10_000),  # large jobs keep the usual 10,000
    (1_000, 16, 100),  # never under the floor
    (30, 4, 100),  # a job under the floor is one shard
])
def test_automatic_shard_sizes_give_every_worker_two_shards_within_bounds(n, workers, shard_size):
    assert automatic_shard_size(n, workers) == shard_size
    assert automatic_shard_size(10**6, 1, largest=500) == 500  # images too big for 10,000 in a shard


@pytest.mark.ray
def test_without_a_shard_size_every_worker_there_in_time_writes_and_the_plan_is_told_first(ray_local, digits_snapshot, tmp_path):
    args = ["synthesize", "--model", digits_snapshot, "--n", "1000", "--workers", "2", "--seed", "3"]
    manifests = []
    for name in ("a", "b"):
        result = CliRunner().invoke(main, args + ["--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        manifests.append(json.loads((tmp_path / name / MANIFEST).read_text()))
    plan_line = next(line for line in result.stderr.splitlines() if line.startswith("plan"))
    assert "1,000 images in 4 shards of 250" in plan_line and "2 CPU workers" in plan_line, plan_line
    assert re.search(r"about [0-9.]+ kB of parquet", plan_line), plan_line
    assert re.search(r"\); roughly [0-9]+ s here$", plan_line), plan_line  # from the sample's time per image
    first, second = manifests
    assert first["plan"] == second["plan"] and first["plan"]["shard_size"] == 250  # the same command, the same plan
    assert [s["sha256"] for s in first["shards"]] == [s["sha256"] for s in second["shards"]]
    for manifest in manifests:
        assert_the_workers_there_in_time_all_wrote(manifest["workers"])
    explicit = synthesize(SynthesisOptions(digits_snapshot, str(tmp_path / "c"), n=1000, shard_size=300, workers=2,
                                           progress=False))
    assert explicit["plan"]["shard_size"] == 300 and explicit["totals"]["shards"] == 4


def assert_the_workers_there_in_time_all_wrote(workers: list[dict]) -> None:
    """Every worker that joined within the scheduler's grace after the first one wrote images; none was lost.

    A worker the cluster starts later than that may find every shard taken, by design; on a quiet machine both
    join within a second of each other, so there this asks that both wrote.
    """
    assert not any(w.get("lost") and not w["lost"].startswith("never started") for w in workers), workers
    first_s = min(w["joined_s"] for w in workers if w["joined_s"] is not None)
    in_time = [w for w in workers if w["joined_s"] is not None and w["joined_s"] - first_s < JOIN_GRACE_S]
    assert len(in_time) >= 1 and all(w["images"] > 0 for w in in_time), workers


@pytest.mark.ray
def test_a_resume_on_other_workers_keeps_the_recorded_shard_size(ray_local, digits_snapshot, tmp_path):
    out = str(tmp_path / "out")
    synthesize(SynthesisOptions(digits_snapshot, out, n=400, workers=2, progress=False))
    resumed = synthesize(SynthesisOptions(digits_snapshot, out, n=400, workers=1, resume=True, progress=False))
    assert resumed["plan"]["shard_size"] == 100 and resumed["images_resumed"] == 400


@pytest.mark.ray
def test_a_long_shard_shows_the_images_drawn_for_it_before_it_lands(ray_local, digits_cdm_snapshot, tmp_path):
    # One shard of 4 generation chunks of 256, each a few hundred network evaluations: seconds on any CPU, and the
    # scheduler asks its worker every second.
    args = ["synthesize", "--model", digits_cdm_snapshot, "--n", "1024", "--shard-size", "1024", "--workers", "1",
            "--steps", "30", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    drawn = [int(count.replace(",", "")) for count in
             re.findall(r"([0-9,]+) images drawn for the shards in progress", result.stderr)]
    assert drawn, result.stderr
    assert all(count % 256 == 0 and 0 < count <= 1024 for count in drawn), drawn  # whole chunks of this shard
    assert drawn == sorted(drawn) and drawn[0] < 1024, drawn  # it grew while the shard was being made
    final = result.stderr.rstrip().split("\r")[-1]
    assert "100%" in final and "drawn" not in final, final  # once it landed, the bar counts it and drops the note


JOB = """
[data]
spec = "builtin:digits"
[train]
out = "{run}"
device = "cpu"
[synthesize]
n = 400
workers = {workers}
"""


@pytest.mark.ray
def test_genaug_run_skips_a_finished_job_without_shard_size_whatever_its_workers(ray_local, digits_snapshot, tmp_path):
    def stage(workers: int) -> str:
        (tmp_path / "job.toml").write_text(JOB.format(run=tmp_path / "run", workers=workers))
        return _synthesize_stage(load_job(tmp_path / "job.toml"), digits_snapshot, synthetic, lambda line: None).action

    synthetic = str(tmp_path / "run" / "synth")
    assert [stage(2), stage(2), stage(1)] == ["ran", "skipped", "skipped"]
    next((tmp_path / "run" / "synth").glob("data/train-00001-of-*.parquet")).write_bytes(b"damaged")
    assert stage(1) == "resumed"
    manifest = json.loads((tmp_path / "run" / "synth" / MANIFEST).read_text())
    assert manifest["plan"]["shard_size"] == 100 and manifest["images_resumed"] == 300


@pytest.mark.ray
def test_an_output_without_room_is_refused_before_anything_is_written(ray_local, digits_snapshot, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 20_000, 20_000))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["synthesize", "--model", digits_snapshot, "--n", "1e4", "--out", str(out)])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert re.fullmatch(
        rf"Error: --out '{out}': about [0-9.]+ kB for 10,000 parquet images \(about [0-9,]+ bytes each\) and "
        r"20\.0 kB free on its file system \(expected --n [0-9,]+ or fewer, or an --out with more room\)\n",
        result.output,
    ), result.output
    assert not out.exists()


@pytest.mark.ray
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where no GPU is")
def test_synthesize_gpus_without_cuda_is_one_line(digits_snapshot, tmp_path):
    # A process of its own: its private Ray counts the machine's real GPUs, where the tests' Ray declares 2.
    # Refused before a Ray starts (it took about a minute to say so): no Ray session under its own RAY_TMPDIR.
    # (A short folder: Ray's socket paths under it must fit in 107 bytes.)
    out = tmp_path / "out"
    with tempfile.TemporaryDirectory(dir="/tmp") as ray_tmp:
        result = subprocess.run([sys.executable, "-m", "gen_aug", "synthesize", "--model", digits_snapshot, "--n",
                                 "10", "--gpus", "1", "--out", str(out)], capture_output=True, text=True, timeout=300,
                                env=os.environ | {"RAY_TMPDIR": ray_tmp})
        ray_files = os.listdir(ray_tmp)
    assert result.returncode == 1 and not result.stdout, result
    assert result.stderr.splitlines() == [
        "Error: --gpus 1: no CUDA device is visible here (expected --gpus 0, and --workers N for N CPU workers)"
    ], result.stderr
    assert not out.exists() and not ray_files
