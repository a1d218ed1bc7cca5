"""Fault trials beyond lost actors and drivers: two writers at once, a killed encoder process, a hung worker, a full disk.

Each trial runs a real job on this machine's Ray, injects its fault mid-job from a seeded generator,
lets the job finish (after the fault is lifted, by --resume where the job had to stop), and counts
images lost and duplicated, shards unlike a clean run's, temporaries and /dev/shm segments left.

Guards: gen_aug/output/claim.py, gen_aug/synthesis/handoff.py, gen_aug/synthesis/worker.py,
    gen_aug/synthesis/scheduler.py, gen_aug/synthesis/reaper.py, gen_aug/output/storage.py,
    gen_aug/synthesis/driver.py
"""

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from gen_aug.checkpoint import save_snapshot
from gen_aug.errors import GenaugError
from gen_aug.models import build_model
from gen_aug.synthesis.driver import synthesize
from gen_aug.output.manifest import MANIFEST, STATE_DIR
from gen_aug.synthesis.options import SynthesisOptions
from gen_aug.synthesis.reaper import descendants, process_table
from gen_aug.output.storage import TEMP_PREFIX
from gen_aug.output.verification import verify
from test_faults import wait_for_done_shards  # beside this file: the landed fault suite's wait

pytestmark = [pytest.mark.slow, pytest.mark.ray]

REPO = Path(__file__).resolve().parents[1]
SEED = 11
JOB = {"n": 1_200, "shard_size": 50, "seed": 4}  # 24 shards of the 28x28 model: a few seconds on 2 cores
N = JOB["n"]
SHM = Path("/dev/shm")


@dataclass
class Trial:
    fault: str
    injected: bool
    completed: bool
    lost: int
    duplicates: int
    unlike_clean: int
    leftovers: int  # temporaries and state in the output, new segments in /dev/shm


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("trust-faults") / "full.safetensors"
    save_snapshot(path, build_model("cgan", {"resolution": 28, "channels": 1, "num_classes": 3}),
                  {"class_names": ["cat", "dog", "owl"]})
    return str(path)


@pytest.fixture(scope="module")
def clean(ray_local, snapshot, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("trust-clean") / "out"
    synthesize(SynthesisOptions(snapshot, str(out), workers=1, progress=False, **JOB))
    return hashes(out)


def hashes(out: Path) -> dict[int, str]:
    return {s["shard_idx"]: s["sha256"] for s in json.loads((out / MANIFEST).read_text())["shards"]}


def outcome(fault: str, out: Path, injected: bool, completed: bool, expected: dict, shm_before: set) -> Trial:
    columns = [pq.read_table(f, columns=["index"]).column("index").to_numpy() for f in out.glob("data/train-*.parquet")]
    indices = np.concatenate([np.empty(0, np.int64), *columns])
    found = hashes(out) if (out / MANIFEST).exists() else {}
    leftovers = [p for p in out.rglob("*") if p.name.startswith(TEMP_PREFIX) or p.name == STATE_DIR]
    new_segments = {p for p in os.listdir(SHM) if not p.startswith("plasma")} - shm_before
    return Trial(fault, injected, completed and verify(str(out)).ok, N - len(np.unique(indices)),
                 len(indices) - len(np.unique(indices)), sum(found.get(i) != h for i, h in expected.items()),
                 len(leftovers) + len(new_segments))


def job_workers() -> list[int]:
    """Pids of the workers of the job running on this test process's Ray, as its actors report them.

    Never a search of the machine by name: another suite's workers carry the same names, and a trial
    must not stop or kill them.
    """
    import ray

    pids = []
    for name in sorted(n for n in ray.util.list_named_actors() if n.startswith("genaug-")):
        with contextlib.suppress(ValueError, ray.exceptions.RayActorError):  # gone since the listing
            pids.append(ray.get(ray.get_actor(name).describe.remote(), timeout=60)["pid"])
    return pids


def command_has(pid: int, marker: str) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False  # ended since it was listed


def children(pids: set[int], marker: str) -> list[int]:
    """The processes started by `pids` whose command line has `marker`."""
    return [pid for pid, (parent, _) in sorted(process_table().items()) if parent in pids and command_has(pid, marker)]


def in_background(options: SynthesisOptions) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run():
        try:
            result["manifest"] = synthesize(options)
        except GenaugError as error:
            result["error"] = str(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def killed_encoder(rng, snapshot, out) -> tuple[bool, bool]:
    """One encoder process of the only worker dies: the worker starts fresh encoders and redoes the shard."""
    thread, result = in_background(SynthesisOptions(snapshot, str(out), workers=1, encode_processes=1,
                                                    progress=False, **JOB))
    running = wait_for_done_shards(out, rng.randint(1, 8))
    encoders = children(set(job_workers()), "multiprocessing.spawn")
    for pid in encoders[:1]:
        os.kill(pid, signal.SIGKILL)
    thread.join(timeout=300)
    restarts = sum(w.get("encoder_restarts", 0) for w in result.get("manifest", {}).get("workers", []))
    return running and bool(encoders) and restarts >= 1, "manifest" in result


def hung_worker(rng, snapshot, out) -> tuple[bool, bool]:
    """A worker stops answering (SIGSTOP): past the deadline it is killed and its shards go to the other."""
    thread, result = in_background(SynthesisOptions(snapshot, str(out), workers=2, progress=False, **JOB))
    running = wait_for_done_shards(out, rng.randint(1, 8))
    workers = job_workers()
    stopped = workers[rng.randrange(len(workers))] if workers else None
    if stopped is not None:
        os.kill(stopped, signal.SIGSTOP)
    thread.join(timeout=300)
    if stopped is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stopped, signal.SIGCONT)
    hung = [w for w in result.get("manifest", {}).get("workers", []) if "hung" in w.get("lost", "")]
    return running and len(hung) == 1, "manifest" in result


def two_writers(rng, snapshot, out) -> tuple[bool, bool]:
    """Two `genaug synthesize` into one folder a moment apart: one writes, the other is refused, nothing mixes."""
    def start(seed: int) -> subprocess.Popen:
        args = ["--model", snapshot, "--out", str(out), "--n", str(N), "--shard-size", str(JOB["shard_size"]),
                "--seed", str(seed), "--workers", "1"]
        return subprocess.Popen([sys.executable, "-m", "gen_aug", "synthesize", *args], cwd=REPO, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = start(JOB["seed"])
    time.sleep(rng.uniform(0, 1.5))
    second = start(JOB["seed"] + 1)
    (_, first_err), (_, second_err) = first.communicate(timeout=300), second.communicate(timeout=300)
    codes = (first.returncode, second.returncode)
    refused = first_err if codes[0] else second_err
    errors = [line for line in refused.splitlines() if line.startswith("Error:")]
    one_refused = sorted(codes) == [0, 1] and len(errors) == 1 and "Traceback" not in refused
    if codes[0] != 0 and one_refused:  # the second one won: compare with a clean run of its seed
        shutil.rmtree(out)
        synthesize(SynthesisOptions(snapshot, str(out), workers=1, progress=False, **JOB))
    return one_refused, one_refused


def synthesize_cli(snapshot: str, out: Path) -> list[str]:
    """`genaug synthesize` of the trials' job into `out` on a private Ray with 2 workers."""
    return [sys.executable, "-m", "gen_aug", "synthesize", "--model", snapshot, "--out", str(out), "--n", str(N),
            "--shard-size", str(JOB["shard_size"]), "--seed", str(JOB["seed"]), "--workers", "2"]


def full_disk(rng, snapshot, out) -> tuple[bool, bool]:
    """The output's file system fills up mid-job: one error line, then --resume once there is room finishes exactly.

    The output sits on a small tmpfs of its own; after a few shards a file beside the output takes
    every byte left, and is deleted again before --resume.
    """
    mount = out.parent / f"{out.name}-disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    inside = mount / "out"
    try:
        cli = synthesize_cli(snapshot, inside)
        job = subprocess.Popen(cli, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        running = wait_for_done_shards(inside, rng.randint(1, 8))
        with contextlib.suppress(OSError), open(mount / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 2**16)
                filler.flush()
        _, stderr = job.communicate(timeout=300)
        errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
        injected = running and job.returncode == 1 and len(errors) == 1 and "No space left" in errors[0] \
            and "Traceback" not in stderr
        (mount / "filler").unlink()
        resumed = subprocess.run(cli + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=300)
        shutil.copytree(inside, out, symlinks=True)
    finally:
        subprocess.run(["umount", str(mount)])
    return injected, resumed.returncode == 0


def running(pid: int, started: int) -> bool:
    """The process is still this one (same start time) and not only an unreaped exit status."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0] != "Z" and int(fields[19]) == started


def still_running_after(processes: dict[int, int], seconds: float) -> list[int]:
    """The pids of `processes` (pid -> start time) still running once they all ended or `seconds` passed."""
    deadline = time.time() + seconds
    while any(running(pid, start) for pid, start in processes.items()) and time.time() < deadline:
        time.sleep(0.2)
    return [pid for pid, start in processes.items() if running(pid, start)]


def killed_driver(rng, snapshot, out) -> tuple[bool, bool]:
    """SIGKILL to a `genaug synthesize` on its private Ray: within seconds none of its processes is left; --resume ends it.

    Ray's GCS and raylet die with their driver on their own, its agents only a minute later, so
    the trial gives them 15 seconds.
    """
    cli = synthesize_cli(snapshot, out)
    job = subprocess.Popen(cli, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = wait_for_done_shards(out, rng.randint(1, 8))
    below = descendants({job.pid}, process_table())
    job.kill()
    job.wait()
    left = still_running_after(below, 15)
    resumed = subprocess.run(cli + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=300)
    return started and len(below) >= 3 and not left, resumed.returncode == 0


def test_no_ray_process_outlives_a_job_whose_gcs_was_killed(snapshot, clean, tmp_path):
    """SIGKILL to the GCS of a `genaug synthesize`: the job still ends with every shard right, and none of its
    processes is left seconds later, though Ray's agents alone wait about a minute for the GCS."""
    out = tmp_path / "out"
    cli = synthesize_cli(snapshot, out)
    job = subprocess.Popen(cli, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_for_done_shards(out, 1)
        below = descendants({job.pid}, process_table())
        gcs = [pid for pid in below if command_has(pid, "gcs_server")]
        assert len(gcs) == 1 and any(command_has(pid, "Agent") for pid in below), below
        os.kill(gcs[0], signal.SIGKILL)
    finally:
        _, stderr = job.communicate(timeout=300)
    left = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] for pid in still_running_after(below, 15)]
    assert not left, f"left 15 s after the job: {left}"
    assert job.returncode == 0, stderr
    assert hashes(out) == clean and verify(str(out)).ok


FAULTS = {"killed driver": killed_driver, "killed encoder": killed_encoder, "hung worker": hung_worker, "two writers": two_writers,
          "full disk": full_disk}


def table(trials: list[Trial]) -> str:
    header = f"{'fault':<16}{'trials':>7}{'injected':>9}{'survived':>9}{'lost':>6}{'dups':>6}{'unlike clean':>13}" \
             f"{'left over':>10}"
    lines = [f"trust faults: {N:,} images in {N // JOB['shard_size']} shards per job, seed {SEED}", header,
             "-" * len(header)]
    for fault in (*FAULTS, "all"):
        rows = [t for t in trials if fault in (t.fault, "all")]
        lines.append(f"{fault:<16}{len(rows):>7}{sum(t.injected for t in rows):>9}{sum(t.completed for t in rows):>9}"
                     f"{sum(t.lost for t in rows):>6}{sum(t.duplicates for t in rows):>6}"
                     f"{sum(t.unlike_clean for t in rows):>13}{sum(t.leftovers for t in rows):>10}")
    return "\n".join(lines)


def test_no_fault_loses_mixes_or_leaves_anything(ray_local, snapshot, clean, tmp_path, capsys):
    rng = random.Random(SEED)
    trials = []
    try:
        for round_idx in range(2):
            for fault, inject in FAULTS.items():
                out = tmp_path / f"{round_idx}-{fault.replace(' ', '-')}"
                shm_before = {p for p in os.listdir(SHM) if not p.startswith("plasma")}
                injected, completed = inject(rng, snapshot, out)
                trials.append(outcome(fault, out, injected, completed, clean, shm_before))
    finally:
        report = table(trials)
        (tmp_path / "trust-fault-table.txt").write_text(report + "\n")
        with capsys.disabled():
            print("\n" + report)
    assert all(t.injected for t in trials), [t for t in trials if not t.injected]
    assert all(t.completed for t in trials), [t for t in trials if not t.completed]
    assert sum(t.lost + t.duplicates + t.unlike_clean + t.leftovers for t in trials) == 0, trials


def test_a_trial_signals_only_its_own_job_while_another_job_runs_beside_it(ray_local, snapshot, clean, tmp_path):
    """Another `genaug synthesize` (its own Ray, workers of the same name) runs while an encoder trial kills one
    of this job's encoders: both jobs end with every shard right, and the trial never saw the other's workers."""
    beside_out = tmp_path / "beside"
    beside = subprocess.Popen(
        [sys.executable, "-m", "gen_aug", "synthesize", "--model", snapshot, "--out", str(beside_out), "--n", "3000",
         "--shard-size", "50", "--seed", "5", "--workers", "1"],
        cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert wait_for_done_shards(beside_out, 1)
        theirs = [pid for pid in descendants({beside.pid}, process_table()) if command_has(pid, "ray::ShardWorker")]
        out = tmp_path / "own"
        thread, result = in_background(SynthesisOptions(snapshot, str(out), workers=1, encode_processes=1,
                                                        progress=False, **JOB))
        assert wait_for_done_shards(out, 1)
        ours = job_workers()
        assert ours and theirs and not set(ours) & set(theirs), (ours, theirs)
        shm_before = {p for p in os.listdir(SHM) if not p.startswith("plasma")}
        encoders = children(set(ours), "multiprocessing.spawn")
        os.kill(encoders[0], signal.SIGKILL)
        thread.join(timeout=300)
    finally:
        _, stderr = beside.communicate(timeout=300)
    assert result.get("manifest"), result
    trial = outcome("killed encoder", out, True, True, clean, shm_before)
    assert (trial.completed, trial.lost, trial.duplicates, trial.unlike_clean) == (True, 0, 0, 0), trial
    assert beside.returncode == 0 and "lost" not in stderr, stderr
    assert verify(str(beside_out)).ok
