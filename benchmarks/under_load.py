"""Jobs and fault trials beside busy processes: each must complete, however slowly (completion, not timing, is the check).

    .venv/bin/python benchmarks/under_load.py [--busy 2] [--skip-readme-job] [--skip-trials]

Starts `--busy` processes that spin on a core each (stopped again at the end, however the script
ends), then runs beside them, one after another:

1. the README job, `genaug run jobs/digits.toml`, into a fresh folder;
2. `genaug synthesize --n 2e4 --workers 2` of the untrained default model, then `genaug verify`;
3. the trust fault trials (killed driver, killed encoder, hung worker, two writers, full disk),
   `pytest tests/test_faults_trust.py`, which count images lost, duplicated and unlike a clean run.

It prints one line per step: its exit status and wall seconds, and exits 1 if any step failed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPIN = "while True: pass"


def start_busy(count: int) -> list[subprocess.Popen]:
    """Processes that each keep one core busy; each in a session of its own, so stopping them touches nothing else."""
    return [subprocess.Popen([sys.executable, "-c", SPIN], start_new_session=True) for _ in range(count)]


def stop_busy(busy: list[subprocess.Popen]) -> None:
    for process in busy:
        process.send_signal(signal.SIGKILL)  # only these pids: the spinners this script started
        process.wait()


def step(name: str, command: list[str], log: Path, env: dict | None = None) -> tuple[str, int, float]:
    started = time.perf_counter()
    with open(log, "w") as stream:
        code = subprocess.run(command, cwd=REPO, stdout=stream, stderr=subprocess.STDOUT, env=env).returncode
    return name, code, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=2, help="spinning processes beside the jobs")
    parser.add_argument("--skip-readme-job", action="store_true", help="leave out `genaug run jobs/digits.toml`")
    parser.add_argument("--skip-trials", action="store_true", help="leave out the trust fault trials")
    args = parser.parse_args()
    genaug = [sys.executable, "-m", "gen_aug"]
    folder = Path(tempfile.mkdtemp(prefix="genaug-under-load-"))
    busy = start_busy(args.busy)
    results = []
    try:
        if not args.skip_readme_job:
            job = folder / "digits.toml"
            text = (REPO / "jobs" / "digits.toml").read_text()
            job.write_text(text.replace('out = "runs/digits"', f'out = "{folder / "digits"}"'))
            results.append(step("README job (genaug run jobs/digits.toml)", [*genaug, "run", str(job)],
                                folder / "readme-job.log"))
        from gen_aug.bench import BenchOptions, untrained_snapshot

        snapshot = untrained_snapshot(BenchOptions(), folder)
        out = folder / "synth"
        results.append(step("synthesize --n 2e4 --workers 2",
                            [*genaug, "synthesize", "--model", str(snapshot), "--n", "2e4", "--workers", "2",
                             "--out", str(out)], folder / "synthesize.log"))
        results.append(step("verify of that output", [*genaug, "verify", str(out)], folder / "verify.log"))
        if not args.skip_trials:
            results.append(step("trust fault trials (pytest)",
                                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 "tests/test_faults_trust.py"], folder / "trials.log"))
    finally:
        stop_busy(busy)
    print(f"beside {args.busy} busy processes on {os.cpu_count()} cores; logs in {folder}")
    for name, code, seconds in results:
        print(f"  {name:<44} exit {code}  {seconds:7.1f} s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
