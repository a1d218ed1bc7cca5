"""Synthesis on a local Ray and a two-node cluster: identical bytes for any worker count, losses survived, resume.

Guards: gen_aug/synthesis/driver.py, gen_aug/synthesis/scheduler.py, gen_aug/synthesis/session.py,
    gen_aug/synthesis/worker.py, gen_aug/synthesis/options.py, gen_aug/synthesis/commands.py
"""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from ray.util.placement_group import remove_placement_group

from gen_aug.checkpoint import save_snapshot
from gen_aug.cli import main
from gen_aug.errors import GenaugError
from gen_aug.output.manifest import DONE_DIR, MANIFEST
from gen_aug.output.storage import TEMP_PREFIX
from gen_aug.output.verification import verify
from gen_aug.models import build_model
from gen_aug.synthesis.driver import synthesize
from gen_aug.synthesis.options import SynthesisOptions

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[1]
NAMES = ["cat", "dog", "owl"]
# Long enough (about 2 s of shards on 2 cores) to hit mid-run, short enough for a test.
MID_RUN_JOB = {"n": 1_200, "shard_size": 50, "seed": 11}


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    """A tiny 8x8 model for quick jobs and a default-size 28x28 one (about 400 images/s per core) for mid-run faults."""
    folder = tmp_path_factory.mktemp("snapshots")
    tiny = build_model("cgan", {"resolution": 8, "channels": 1, "num_classes": 3, "z_dim": 8, "width": 4})
    save_snapshot(folder / "tiny.safetensors", tiny, {"class_names": NAMES})
    full = build_model("cgan", {"resolution": 28, "channels": 1, "num_classes": 3})
    save_snapshot(folder / "full.safetensors", full, {"class_names": NAMES})
    return {"tiny": str(folder / "tiny.safetensors"), "full": str(folder / "full.safetensors")}


def shard_hashes(out) -> dict:
    return {s["shard_idx"]: s["sha256"] for s in json.loads((Path(out) / MANIFEST).read_text())["shards"]}


def assert_complete(out, n: int) -> None:
    """Exactly n rows, each index once, every hash as the manifest says, nothing else in the folder."""
    files = sorted(Path(out).glob("data/*.parquet"))
    indices = np.concatenate([pq.read_table(f, columns=["index"]).column("index").to_numpy() for f in files])
    assert len(indices) == n and np.array_equal(np.sort(indices), np.arange(n))
    report = verify(str(out))
    assert report.ok, report.lines()


def wait_for_done_shards(out: Path, count: int, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        done = out / DONE_DIR
        if done.is_dir() and len([p for p in done.iterdir() if p.suffix == ".json" and
                                  not p.name.startswith(TEMP_PREFIX)]) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"no {count} finished shards in {out} within {timeout_s} s")


@pytest.fixture(scope="module")
def clean_run(ray_local, snapshots, tmp_path_factory):
    """The mid-run job done once, uninterrupted, by one worker: the hashes every other run must reproduce."""
    out = tmp_path_factory.mktemp("clean") / "out"
    synthesize(SynthesisOptions(snapshots["full"], str(out), workers=1, progress=False, **MID_RUN_JOB))
    assert_complete(out, 1200)
    return shard_hashes(out)


def test_two_workers_write_the_same_bytes_as_one(clean_run, snapshots, tmp_path):
    out = tmp_path / "out"
    manifest = synthesize(SynthesisOptions(snapshots["full"], str(out), workers=2, progress=False, **MID_RUN_JOB))
    assert shard_hashes(out) == clean_run
    assert [w["images"] > 0 for w in manifest["workers"]] == [True, True]
    assert manifest["totals"]["images"] == 1200 and manifest["images_per_sec"] > 0


def test_parquet_reads_back_in_pyarrow_ray_data_and_datasets(ray_local, snapshots, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["synthesize", "--model", snapshots["tiny"], "--n", "60", "--shard-size", "16",
                                       "--workers", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "60 in 4 parquet shards" in result.output
    assert_complete(out, 60)
    table = pq.read_table(sorted(out.glob("data/*.parquet"))[0])
    assert table.column_names == ["image", "label", "class_name", "index", "seed"]
    rows = ray_local.data.read_parquet(str(out), file_extensions=["parquet"]).take_all()
    assert len(rows) == 60 and {r["class_name"] for r in rows} == set(NAMES)
    assert all(r["image"]["bytes"].startswith(b"\x89PNG") for r in rows)
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train",
                                   cache_dir=str(tmp_path / "cache"))
    assert isinstance(loaded.features["image"], datasets.Image)
    assert loaded.features["label"].names == NAMES and len(loaded) == 60
    assert loaded[0]["image"].size == (8, 8)


def test_png_output_is_an_image_folder(ray_local, snapshots, tmp_path):
    torchvision = pytest.importorskip("torchvision")
    out = tmp_path / "out"
    synthesize(SynthesisOptions(snapshots["tiny"], str(out), n=30, shard_size=8, workers=2, format="png",
                                progress=False))
    assert verify(str(out)).ok
    folder = torchvision.datasets.ImageFolder(str(out))
    assert folder.classes == sorted(NAMES) and len(folder) == 30
    assert sorted(int(Path(p).stem) for p, _ in folder.samples) == list(range(30))
    assert folder[0][0].size == (8, 8)


def test_a_file_of_the_user_s_named_unfinished_txt_is_never_written_over_or_removed(ray_local, snapshots, tmp_path):
    out = tmp_path / "out"
    synthesize(SynthesisOptions(snapshots["tiny"], str(out), n=20, shard_size=10, workers=1, progress=False))
    assert not (out / "UNFINISHED.txt").exists()  # genaug's own is gone once the manifest is written
    (out / "UNFINISHED.txt").write_text("my notes")
    synthesize(SynthesisOptions(snapshots["tiny"], str(out), n=20, shard_size=10, workers=1, progress=False,
                                overwrite=True))
    assert (out / "UNFINISHED.txt").read_text() == "my notes"


def test_each_gpu_worker_is_pinned_to_its_own_device(ray_local, snapshots, tmp_path):
    manifest = synthesize(SynthesisOptions(snapshots["tiny"], str(tmp_path / "out"), n=40, shard_size=10, gpus=2,
                                           progress=False))
    # Ray declares 2 GPUs that this machine does not have: each actor sees its own id and still runs on CPU.
    assert sorted(w["cuda_visible_devices"] for w in manifest["workers"]) == ["0", "1"]
    assert {w["device"] for w in manifest["workers"]} == {"cpu"}


def in_thread(options: SynthesisOptions) -> tuple[threading.Thread, dict]:
    """A job in a thread of this process (not started yet); its manifest, or the error it raised, in the dict."""
    outcome = {}

    def run():
        try:
            outcome["manifest"] = synthesize(options)
        except Exception as error:  # noqa: BLE001  (re-raised in the test thread)
            outcome["error"] = error

    return threading.Thread(target=run), outcome


def test_a_killed_actor_s_shards_go_to_the_other(ray_local, clean_run, snapshots, tmp_path):
    out = tmp_path / "out"
    thread, outcome = in_thread(SynthesisOptions(snapshots["full"], str(out), workers=2, progress=False,
                                                 **MID_RUN_JOB))
    thread.start()
    wait_for_done_shards(out, 1)
    name = sorted(n for n in ray_local.util.list_named_actors() if n.startswith("genaug-"))[0]
    ray_local.kill(ray_local.get_actor(name))
    thread.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    assert [w.get("lost") for w in outcome["manifest"]["workers"]].count("ActorDiedError") == 1
    assert_complete(out, 1200)
    assert shard_hashes(out) == clean_run


def cpu_holder(ray, cpus: int):
    """A placement group that takes `cpus` of this Ray's 4 CPU slots until removed: a cluster busy for a while."""
    from ray.util.placement_group import placement_group

    group = placement_group([{"CPU": cpus}])
    ray.get(group.ready(), timeout=60)
    return group


def test_a_job_starts_on_the_first_worker_and_takes_on_a_late_one(ray_local, clean_run, snapshots, tmp_path):
    """One CPU free of four: the first worker starts at once; the second only once the other three come free."""
    holder = cpu_holder(ray_local, 3)
    out = tmp_path / "out"
    thread, outcome = in_thread(SynthesisOptions(snapshots["full"], str(out), workers=2, progress=False,
                                                 **MID_RUN_JOB))
    started = time.monotonic()
    thread.start()
    wait_for_done_shards(out, 2)
    freed_s = time.monotonic() - started
    remove_placement_group(holder)
    thread.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    assert_complete(out, 1200)
    assert shard_hashes(out) == clean_run
    first, late = sorted(outcome["manifest"]["workers"], key=lambda w: (w["joined_s"] is None, w["joined_s"] or 0))
    assert first["joined_s"] < freed_s and first["images"] > 0
    # The job may end before the second worker has loaded the snapshot: then it says so rather than waiting.
    assert (late["joined_s"] is not None and late["joined_s"] > first["joined_s"]) or \
        late["lost"].startswith("never started"), late


def test_no_worker_started_in_the_start_timeout_is_one_line(ray_local, snapshots, tmp_path):
    holder = cpu_holder(ray_local, 4)
    try:
        with pytest.raises(GenaugError) as error:
            synthesize(SynthesisOptions(snapshots["tiny"], str(tmp_path / "out"), n=30, workers=1, progress=False,
                                        worker_start_timeout_s=2))
    finally:
        remove_placement_group(holder)
    message = str(error.value)
    assert message.startswith("workers: none of 1 started within 2 s (cluster has CPU 0 of 4 free")
    assert "--worker-start-timeout" in message and "\n" not in message
    assert not (tmp_path / "out" / MANIFEST).exists()


def test_a_cluster_that_can_never_hold_a_worker_fails_at_once_in_one_line(snapshots, tmp_path):
    from ray.cluster_utils import Cluster

    from conftest import RAY_OBJECT_STORE_BYTES

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={
        "num_cpus": 0, "object_store_memory": RAY_OBJECT_STORE_BYTES, "include_dashboard": False})
    address = cluster.address
    try:
        job = subprocess.run([sys.executable, "-m", "gen_aug", "synthesize", "--model", snapshots["tiny"], "--n", "30",
                              "--out", str(tmp_path / "out"), "--address", address],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        cluster.shutdown()
    errors = [line for line in job.stderr.splitlines() if line.startswith("Error:")]
    assert job.returncode == 1 and "Traceback" not in job.stderr, job.stderr
    assert errors == [f"Error: workers: the Ray cluster at {address} has no CPUs "
                      "(expected a node with 1 CPU or more for each CPU worker)"]


def test_a_shard_of_nan_pixels_fails_the_job_in_one_line_naming_the_model(ray_local, tmp_path):
    """The one owl (image 82, shard 1) comes out NaN; the size estimate's sample (images 0-31) has none, so the
    worker that generates it must notice: uint8 would have written it as a plausible image."""
    model = build_model("cgan", {"resolution": 8, "channels": 1, "num_classes": 3, "z_dim": 8, "width": 4})
    with torch.no_grad():
        model.net.embed.weight[2].fill_(3e38)  # finite, but the generator's sums overflow into NaN
    snapshot = tmp_path / "owl-nan.safetensors"
    save_snapshot(snapshot, model, {"class_names": NAMES})
    out = tmp_path / "out"
    with pytest.raises(GenaugError) as error:
        synthesize(SynthesisOptions(str(snapshot), str(out), n=None, per_class="cat=100,dog=100,owl=1",
                                    shard_size=50, workers=1, progress=False))
    assert str(error.value) == (f"--model {str(snapshot)!r}: the model generated NaN or infinite pixels for images "
                                "50 to 99 (expected finite images: its weights or sampler settings are broken; "
                                "retrain it)")
    assert not (out / MANIFEST).exists()


def genaug_process(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gen_aug", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def mid_run_args(snapshot, out) -> list[str]:
    return ["synthesize", "--model", snapshot, "--out", str(out), "--n", "1_200",
            "--shard-size", str(MID_RUN_JOB["shard_size"]), "--seed", str(MID_RUN_JOB["seed"])]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_then_resume_equals_a_clean_run(ray_local, clean_run, snapshots, tmp_path, stop):
    out = tmp_path / "out"
    process = genaug_process(*mid_run_args(snapshots["full"], out), "--workers", "2")
    wait_for_done_shards(out, 2)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1 and "Traceback" not in stderr
    assert "interrupted" in stderr and "rerun the same command with --resume" in stderr
    assert not (out / MANIFEST).exists()
    # What pandas makes of the unfinished folder: a refusal that names UNFINISHED.txt, not the shards so far as data.
    with pytest.raises(Exception, match="UNFINISHED.txt"):
        pd.read_parquet(out)
    assert "Rerun the same genaug synthesize command with --resume" in (out / "UNFINISHED.txt").read_text()
    refused = CliRunner().invoke(main, mid_run_args(snapshots["full"], out))
    assert refused.exit_code == 1 and "not empty" in refused.output
    resumed = CliRunner().invoke(main, mid_run_args(snapshots["full"], out) + ["--workers", "2", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    kept = json.loads((out / MANIFEST).read_text())["images_resumed"]
    assert 100 <= kept < 1200 and f"{kept:,} kept from before" in resumed.output
    assert shard_hashes(out) == clean_run
    assert_complete(out, 1200)
    assert not (out / "UNFINISHED.txt").exists() and len(pd.read_parquet(out)) == 1200


def test_a_lost_node_s_shards_go_to_the_surviving_node(ray_cluster, clean_run, snapshots, tmp_path):
    out = tmp_path / "out"
    process = genaug_process(*mid_run_args(snapshots["full"], out), "--workers", "2", "--address", ray_cluster.address)
    wait_for_done_shards(out, 1)
    worker_node = next(node for node in ray_cluster.worker_nodes)
    ray_cluster.remove_node(worker_node)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "lost (ActorDiedError); its shards go to the 1 others" in stderr
    workers = json.loads((out / MANIFEST).read_text())["workers"]
    assert sorted(str(w.get("lost")) for w in workers) == ["ActorDiedError", "None"]
    assert_complete(out, 1200)
    assert shard_hashes(out) == clean_run


def bad_input_cases(snapshots, tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    (tmp_path / "a-file").write_text("x")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    tiny = ["--model", snapshots["tiny"]]
    return [
        (tiny + ["--n", "0"], "--n '0': out of range"),
        (tiny + ["--n", "-5"], "--n '-5': out of range"),
        (tiny + ["--n", "1.5"], "--n '1.5': not a whole number"),
        (tiny + ["--n", "abc"], "--n 'abc': not a number"),
        (tiny + ["--n", "10", "--gpus", "4"], "--gpus 4: only 2 GPUs visible"),
        (["--model", str(tmp_path / "none.safetensors"), "--n", "10"], "no such file"),
        (["--model", str(corrupt), "--n", "10"], "not a genaug snapshot"),
        (tiny + ["--n", "10", "--out", str(tmp_path / "a-file" / "out")], "cannot write"),
        (tiny + ["--n", "10", "--address", "127.0.0.1:1"], "no Ray cluster answers"),
        (tiny + ["--per-class", "bat=3"], "--per-class: unknown class 'bat'"),
        (tiny + ["--n", "10", "--class-weights", "cat=1,bat=1"], "--class-weights: unknown class 'bat'"),
        (tiny + ["--n", "10", "--classes", "cow"], "--classes: unknown class 'cow'"),
        (tiny + ["--n", "10", "--class-weights", "balance"], "expected --data SPEC"),
        (tiny + ["--n", "10", "--class-weights", "balance", "--data", "builtin:digits"], "differ from the snapshot's"),
        (tiny + ["--n", "10", "--workers", "1", "--gpus", "1"], "GPU jobs run one worker per GPU"),
        (tiny + ["--n", "10", "--workers", "9"], "--workers 9: the Ray cluster has 4 CPUs"),
        (tiny + ["--n", "10", "--resume", "--overwrite"], "both given"),
        (tiny + ["--n", "10", "--out", str(foreign)], "not empty"),
        (tiny + ["--n", "10", "--out", str(foreign), "--overwrite"], "genaug did not write"),
    ]


def test_every_bad_input_is_one_line_and_leaves_nothing_to_resume(ray_local, snapshots, tmp_path):
    for args, message in bad_input_cases(snapshots, tmp_path):
        out = tmp_path / "out"
        if "--out" not in args:
            args = args + ["--out", str(out)]
        started = time.time()
        result = CliRunner().invoke(main, ["synthesize", *args])
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1, (args, result.output)
        assert message in result.output, (args, result.output)
        assert time.time() - started < 30, args
        assert not out.exists() or not any(out.iterdir()), (args, list(out.iterdir()))
    assert (tmp_path / "foreign" / "notes.txt").read_text() == "mine"
