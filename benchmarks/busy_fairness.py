"""How much a genaug training slows beside busy processes, with OpenMP's threads spinning while they wait or not.

Runs `genaug train` (the README job's cgan on builtin:digits, a few hundred steps) alone and beside
--busy processes that spin on the CPU (started and stopped here), once with the OpenMP wait policy
genaug sets for its own processes (passive: a waiting thread sleeps) and once with libgomp's default
(active: it spins, taking CPU time the busy processes would use, and the work slows far beyond its
share). Prints each run's wall seconds and the slowdown beside the busy processes.

    python benchmarks/busy_fairness.py --steps 300 --busy 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time


def spin() -> None:
    while True:
        pass


def train_seconds(steps: int, policy: str | None) -> float:
    """Wall seconds of one `genaug train` run; `policy` is OMP_WAIT_POLICY as set before genaug starts (None: genaug
    sets its own)."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "gen_aug", "train", "--data", "builtin:digits", "--steps", str(steps),
                   "--out", os.path.join(folder, "run")]
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--busy", type=int, default=2, help="spinning processes beside the busy runs")
    args = parser.parse_args()
    policies = {"genaug's (passive)": None, "libgomp default (active)": "ACTIVE"}
    alone = {name: train_seconds(args.steps, policy) for name, policy in policies.items()}
    spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
    for process in spinners:
        process.start()
    try:
        busy = {name: train_seconds(args.steps, policy) for name, policy in policies.items()}
    finally:
        for process in spinners:
            process.terminate()
            process.join()
    print(f"genaug train, {args.steps} steps of the README cgan; {os.cpu_count()} CPUs, {args.busy} busy processes")
    print(f"{'wait policy':<26} {'alone s':>8} {'busy s':>8} {'slowdown':>9}")
    for name in policies:
        print(f"{name:<26} {alone[name]:>8.1f} {busy[name]:>8.1f} {busy[name] / alone[name]:>8.2f}x")


if __name__ == "__main__":
    main()
