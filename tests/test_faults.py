"""Fault injection: synthesis on a two-node Ray cluster loses and duplicates nothing when an actor, a node or the driver dies.

Each trial runs a real job, waits a random number of finished shards plus a random delay (both from
one seeded generator), kills one thing, lets the job finish (a killed driver's job by --resume), then
counts images lost and duplicated and compares every shard's hash with one clean run's. A job whose
driver is the fault is `genaug synthesize --address` in a subprocess; the others run from one
long-lived driver process, which also kills their actors by name.

Guards: gen_aug/synthesis/scheduler.py, gen_aug/synthesis/driver.py
"""

import json
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gen_aug.checkpoint import save_snapshot
from gen_aug.cli import main
from gen_aug.output.manifest import DONE_DIR, MANIFEST, STATE_DIR
from gen_aug.models import build_model
from gen_aug.output.storage import TEMP_PREFIX

pytestmark = [pytest.mark.slow, pytest.mark.ray]

REPO = Path(__file__).resolve().parents[1]
FAULTS = ("actor", "node", "driver SIGINT", "driver SIGKILL")
ROUNDS = 5  # every fault once per round: 20 trials
SEED = 7
JOB = {"n": 4000, "shard_size": 40, "seed": 3}  # 100 shards, about 2 s of work for two 1-CPU workers on 2 cores
N, NUM_SHARDS = JOB["n"], JOB["n"] // JOB["shard_size"]
LATEST_KILL_SHARDS = 25  # kill after 1 to 25 finished shards, so three quarters of the job is still to run
JOB_TIMEOUT_S = 180

# One driver on the cluster for the whole suite runs the jobs whose driver is not the fault, and kills
# their actors by name: this pytest process may hold another Ray connection, and a process has one.
CLUSTER_DRIVER = """
import json
import sys
import threading

import ray

from gen_aug.errors import GenaugError
from gen_aug.synthesis.driver import synthesize
from gen_aug.synthesis.options import SynthesisOptions

ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False)
print("ready", flush=True)
for line in sys.stdin:
    command, _, argument = line.strip().partition(" ")
    if command == "run":
        result, options = {}, SynthesisOptions(**json.loads(argument), progress=False)

        def run(options=options, result=result):
            try:
                result["workers"] = synthesize(options)["workers"]
            except GenaugError as error:
                result["error"] = str(error)

        job = threading.Thread(target=run)
        job.start()
        print("started", flush=True)
    elif command == "kill":
        names = sorted(name for name in ray.util.list_named_actors() if name.startswith("genaug-"))
        try:
            ray.kill(ray.get_actor(names[int(argument) % len(names)]))
            print(names[int(argument) % len(names)], flush=True)
        except (ZeroDivisionError, ValueError):  # no actor, or it ended between the listing and the kill
            print("none", flush=True)
    elif command == "wait":
        job.join()
        print(json.dumps(result), flush=True)
"""


class ClusterDriver:
    """Runs synthesis jobs on the cluster from one long-lived process, and kills their actors on request."""

    def __init__(self, address: str, log: Path):
        self.log = log
        with open(log, "w") as stderr:
            self.process = subprocess.Popen([sys.executable, "-c", CLUSTER_DRIVER, address], cwd=REPO, text=True,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        assert self.ask("") == "ready", self.log.read_text()[-2000:]

    def ask(self, line: str) -> str:
        if line:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def start(self, out: Path, snapshot: str, workers: int = 2, resume: bool = False) -> None:
        options = {"model": snapshot, "out": str(out), "workers": workers, "resume": resume, **JOB}
        assert self.ask(f"run {json.dumps(options)}") == "started"

    def wait(self) -> dict:
        reply = self.ask("wait")
        assert reply.startswith("{"), self.log.read_text()[-2000:]  # the driver died: its last words
        return json.loads(reply)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


@dataclass
class Trial:
    fault: str
    injected: bool  # the fault hit a running job: a worker was lost, or the driver died mid-job
    completed: bool  # exit 0 (after --resume for a killed driver) and `genaug verify` passes
    lost: int  # images of 0..N-1 missing from the shards
    duplicates: int  # rows beyond the first for any index
    unlike_clean: int  # shards whose sha256 differs from the clean run's
    temporaries: int  # partial files and state left in the output
    seconds: float


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("faults") / "tiny.safetensors"
    model = build_model("cgan", {"resolution": 8, "channels": 1, "num_classes": 3, "z_dim": 8, "width": 4})
    save_snapshot(path, model, {"class_names": ["cat", "dog", "owl"]})
    return str(path)


def cli_job(snapshot: str, out: Path, address: str) -> subprocess.Popen:
    args = ["--model", snapshot, "--out", str(out), "--n", str(N), "--shard-size", str(JOB["shard_size"]),
            "--seed", str(JOB["seed"]), "--workers", "2", "--address", address]
    return subprocess.Popen([sys.executable, "-m", "gen_aug", "synthesize", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def shard_hashes(out: Path) -> dict[int, str]:
    return {s["shard_idx"]: s["sha256"] for s in json.loads((out / MANIFEST).read_text())["shards"]}


def done_shards(out: Path) -> int:
    done = out / DONE_DIR
    return sum(1 for p in done.iterdir() if not p.name.startswith(TEMP_PREFIX)) if done.is_dir() else 0


def wait_for_done_shards(out: Path, count: int) -> bool:
    """True once `count` shards are done; False if the job ended first."""
    deadline = time.time() + JOB_TIMEOUT_S
    while done_shards(out) < count:
        if (out / MANIFEST).exists() or time.time() > deadline:
            return False
        time.sleep(0.01)
    return True


def outcome(fault: str, out: Path, completed: bool, clean: dict[int, str], injected: bool, started: float) -> Trial:
    columns = [pq.read_table(f, columns=["index"]).column("index").to_numpy() for f in out.glob("data/train-*.parquet")]
    indices = np.concatenate([np.empty(0, np.int64), *columns])
    unique = np.unique(indices)
    hashes = shard_hashes(out) if (out / MANIFEST).exists() else {}
    leftovers = [p for p in out.rglob("*") if p.name.startswith(TEMP_PREFIX) or p.name == STATE_DIR]
    verified = CliRunner().invoke(main, ["verify", str(out)])
    return Trial(
        fault, injected, completed and verified.exit_code == 0, N - np.isin(np.arange(N), unique).sum(),
        len(indices) - len(unique), sum(hashes.get(shard_idx) != sha256 for shard_idx, sha256 in clean.items()),
        len(leftovers), time.time() - started,
    )


def kill_driver(fault, rng, cluster, driver, snapshot, out) -> tuple[bool, bool]:
    """The CLI job's driver gets SIGINT or SIGKILL mid-job; then --resume. Returns (injected, completed)."""
    process = cli_job(snapshot, out, cluster.address)
    running = wait_for_done_shards(out, rng.randint(1, LATEST_KILL_SHARDS))
    time.sleep(rng.uniform(0, 0.1))
    process.send_signal(signal.SIGINT if fault == "driver SIGINT" else signal.SIGKILL)
    _, stderr = process.communicate(timeout=JOB_TIMEOUT_S)
    if fault == "driver SIGINT":
        stopped = process.returncode == 1 and "interrupted" in stderr and "Traceback" not in stderr
    else:
        stopped = process.returncode == -signal.SIGKILL
    injected = running and stopped and not (out / MANIFEST).exists()
    driver.start(out, snapshot, resume=True)
    return injected, "error" not in driver.wait()


def kill_worker(fault, rng, cluster, driver, add_worker_node, snapshot, out) -> tuple[bool, bool]:
    """An actor (ray.kill by name) or the worker node dies mid-job. Returns (injected, completed)."""
    driver.start(out, snapshot)
    running = wait_for_done_shards(out, rng.randint(1, LATEST_KILL_SHARDS))
    time.sleep(rng.uniform(0, 0.1))
    if fault == "actor":
        driver.ask(f"kill {rng.randrange(2)}")
    else:
        cluster.remove_node(next(iter(cluster.worker_nodes)))
        add_worker_node()  # for the next trial; this job keeps the one actor it has left
    result = driver.wait()
    lost_workers = sum("lost" in worker for worker in result.get("workers", []))
    return running and lost_workers == 1, "error" not in result


def table(trials: list[Trial]) -> str:
    header = f"{'fault':<16}{'trials':>7}{'injected':>9}{'completed':>10}{'lost':>6}{'dups':>6}" \
             f"{'unlike clean':>13}{'temps left':>11}{'seconds':>9}"
    lines = [f"fault suite: {N:,} images in {NUM_SHARDS} shards per job, 2 workers on 2 nodes, seed {SEED}",
             header, "-" * len(header)]
    for fault in (*FAULTS, "all"):
        rows = [t for t in trials if fault in (t.fault, "all")]
        lines.append(
            f"{fault:<16}{len(rows):>7}{sum(t.injected for t in rows):>9}{sum(t.completed for t in rows):>10}"
            f"{sum(t.lost for t in rows):>6}{sum(t.duplicates for t in rows):>6}"
            f"{sum(t.unlike_clean for t in rows):>13}{sum(t.temporaries for t in rows):>11}"
            f"{sum(t.seconds for t in rows):>9.1f}"
        )
    return "\n".join(lines)


def test_no_image_is_lost_or_duplicated_whatever_dies(ray_cluster, add_worker_node, snapshot, tmp_path, capsys):
    if not ray_cluster.worker_nodes:  # an earlier test removed it
        add_worker_node()
    driver = ClusterDriver(ray_cluster.address, tmp_path / "cluster-driver.log")
    rng = random.Random(SEED)
    trials = []
    try:
        driver.start(tmp_path / "clean", snapshot, workers=1)
        assert "error" not in driver.wait()
        clean = shard_hashes(tmp_path / "clean")
        assert len(clean) == NUM_SHARDS
        for _ in range(ROUNDS):
            for fault in FAULTS:
                out = tmp_path / f"trial-{len(trials):02d}-{fault.replace(' ', '-')}"
                started = time.time()
                if fault.startswith("driver"):
                    injected, completed = kill_driver(fault, rng, ray_cluster, driver, snapshot, out)
                else:
                    injected, completed = kill_worker(fault, rng, ray_cluster, driver, add_worker_node, snapshot, out)
                trials.append(outcome(fault, out, completed, clean, injected, started))
    finally:
        driver.close()
        report = table(trials)
        (tmp_path / "fault-table.txt").write_text(report + "\n")
        with capsys.disabled():
            print("\n" + report)
    assert len(trials) == ROUNDS * len(FAULTS) >= 20
    assert all(t.injected for t in trials), [t for t in trials if not t.injected]
    assert all(t.completed for t in trials), [t for t in trials if not t.completed]
    assert sum(t.lost for t in trials) == 0 and sum(t.duplicates for t in trials) == 0
    assert sum(t.unlike_clean for t in trials) == 0 and sum(t.temporaries for t in trials) == 0
