"""A watcher that ends the private Ray's processes when the driver that started them dies unannounced.

On SIGKILL (or the OOM killer) nothing in the driver runs. Ray's GCS and raylet die with it, but the
agents the raylet started wait about a minute for a GCS that is gone, and processes the driver's
children started can outlive it. So a separate process watches: it holds the read end of a pipe
whose write end only the driver has, records the driver's descendants (pid and start time) twice a
second, and when the pipe closes without the word 'done' it kills those still running. A pid that
now belongs to another process (another start time) is left alone. Linux only (/proc); elsewhere
the watcher is not started and Ray's own fate-sharing is all there is.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

POLL_S = 0.5
DONE = b"done\n"
PROC = Path("/proc")


class reaper:
    """Run a watcher for as long as the block: the driver's descendants die with it unless the block ends."""

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.write_fd = -1

    def __enter__(self):
        if not (PROC / "self" / "stat").exists():
            return self
        read_fd, self.write_fd = os.pipe()  # both ends close-on-exec: no Ray process inherits the write end
        try:
            # A session of its own: Ctrl-C in the terminal reaches the driver, which shuts Ray down itself.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gen_aug.synthesis.reaper", str(os.getpid())], stdin=read_fd,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            os.close(read_fd)
        return self

    def __exit__(self, *exc_info):
        if self.process is None:
            return
        try:
            os.write(self.write_fd, DONE)
        finally:
            os.close(self.write_fd)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time in clock ticks) of every process now running."""
    table = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone since the listing
        # The command name in parentheses may hold spaces: the fields that follow start after its last ')'.
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[19]))
    return table


def descendants(roots: set[int], table: dict[int, tuple[int, int]]) -> dict[int, int]:
    """pid -> start time of every process below the roots."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, stack = {}, list(roots)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found[child] = table[child][1]
                stack.append(child)
    return found


def watch(driver_pid: int) -> None:
    """Record the driver's descendants until the pipe closes; kill them unless the driver said 'done'."""
    seen: dict[int, int] = {}
    received = b""
    while True:
        ready, _, _ = select.select([0], [], [], POLL_S)
        if ready:
            chunk = os.read(0, 64)
            received += chunk
            if DONE in received:
                return
            if not chunk:
                break
        seen.update(descendants({driver_pid}, process_table()))
    # Orphans are re-parented: look below everything recorded too, for processes started since the last look.
    table = process_table()
    seen.update(descendants(set(seen), table))
    seen.pop(os.getpid(), None)
    for pid, started in seen.items():
        if table.get(pid, (0, None))[1] == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass  # ended on its own meanwhile


if __name__ == "__main__":
    watch(int(sys.argv[1]))
