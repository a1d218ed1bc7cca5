"""How much a genaug training slows beside busy processes, by how long OpenMP's waiting threads spin before they sleep.

Runs `genaug train` (the README job's cgan on builtin:digits, a few hundred steps) alone and beside
--busy processes that spin on the CPU (started and stopped here), once per wait setting: genaug's own
(about 0.2 ms of spinning), longer spins up to libgomp's default (about 3 ms), never sleeping (active:
a waiting thread takes CPU time the busy processes would use, and the work slows far beyond its share)
and sleeping at once (passive: fair, but small networks run slower alone). Prints each run's wall
seconds and the slowdown beside the busy processes.

    python benchmarks/busy_fairness.py --steps 150 --busy 2 [--policies "genaug's,passive (no spin)"]
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


def train_seconds(steps: int, openmp: dict[str, str]) -> float:
    """Wall seconds of one `genaug train` run with `openmp`'s variables set before genaug starts (empty: genaug sets
    its own)."""
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(openmp)
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
    parser.add_argument("--policies", default="", help="comma-separated names of the policies to run (default all)")
    args = parser.parse_args()
    policies = {
        "genaug's": {},
        "passive (no spin)": {"OMP_WAIT_POLICY": "PASSIVE"},
        "spin 0.2 ms": {"GOMP_SPINCOUNT": "20000"},
        "spin 1 ms": {"GOMP_SPINCOUNT": "100000"},
        "libgomp default (3 ms)": {"GOMP_SPINCOUNT": "300000"},
        "active (spin for ever)": {"OMP_WAIT_POLICY": "ACTIVE"},
    }
    policies = {name: policies[name] for name in args.policies.split(",")} if args.policies else policies
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
    print(f"{'wait policy':<24} {'alone s':>8} {'busy s':>8} {'slowdown':>9}")
    for name in policies:
        print(f"{name:<24} {alone[name]:>8.1f} {busy[name]:>8.1f} {busy[name] / alone[name]:>8.2f}x")


if __name__ == "__main__":
    main()
