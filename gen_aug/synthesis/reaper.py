"""A watcher that ends the private Ray's processes when the driver that started them dies unannounced.

On SIGKILL (or the OOM killer) nothing in the driver runs. Ray's GCS and raylet die with it, but the
agents the raylet started wait about a minute for a GCS that is gone, and processes the driver's
children started can outlive it. So a separate process watches: it holds the read end of a pipe
whose write end only the driver has, records the driver's descendants (pid and start time) twice a
second, and when the pipe closes without the word 'done' it kills those still running. A pid that
now belongs to another process (another start time) is left alone. Linux only (/proc); elsewhere
the watcher is not started and Ray's own fate-sharing is all there is.

'done' comes after ray.shutdown, which stops the GCS and raylet but not always the agents: with the
GCS killed mid-job they wait about a minute for it. So on 'done' the watcher kills the job's
orphans, processes it recorded that now run outside the driver's tree, which nothing else would end.
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
            # The driver's own import path: gen_aug may be importable only through it (a notebook, a checkout).
            env = os.environ | {"PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gen_aug.synthesis.reaper", str(os.getpid())], stdin=read_fd,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env,
            )
        finally:
            os.close(read_fd)
        return self

    def __exit__(self, *exc_info):
        if self.process is None:
            return
        try:
            os.write(self.write_fd, DONE)
        except BrokenPipeError:
            pass  # the watcher is gone: nothing to tell, and the job itself is unharmed
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
            stat = (entry / "stat").read_bytes()
            # The command name in parentheses may hold spaces or any bytes: the fields start after its last ')'.
            fields = stat[stat.rindex(b")") + 2:].split()
            table[int(entry.name)] = (int(fields[1]), int(fields[19]))
        except (OSError, ValueError, IndexError):
            continue  # gone since the listing, or unreadable: not one of ours to judge
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
    """Record the driver's descendants until the pipe closes; kill them, or after 'done' those outside its tree.

    Only processes started after this watcher count: children the driver's process had before (a
    notebook kernel's, say) are not the job's, and a pid reused since is another process's.
    """
    own_start = process_table().get(os.getpid(), (0, 0))[1]
    seen: dict[int, int] = {}
    received = b""
    while True:
        ready, _, _ = select.select([0], [], [], POLL_S)
        if ready:
            chunk = os.read(0, 64)
            received += chunk
            if DONE in received:
                table = process_table()
                below = descendants({driver_pid}, table)
                _kill({pid: started for pid, started in seen.items() if pid not in below}, table)
                return
            if not chunk:
                break
        table = process_table()
        seen = {pid: started for pid, started in seen.items() if table.get(pid, (0, None))[1] == started}
        seen.update(_since(descendants({driver_pid}, table), own_start))
    # Orphans are re-parented: look below every recorded process still running, for those started since the last look.
    table = process_table()
    alive = {pid for pid, started in seen.items() if table.get(pid, (0, None))[1] == started}
    seen.update(_since(descendants(alive, table), own_start))
    _kill(seen, table)


def _kill(found: dict[int, int], table: dict[int, tuple[int, int]]) -> None:
    """SIGKILL each found process that still runs as the one recorded (same start time); never this watcher."""
    for pid, started in found.items():
        if pid != os.getpid() and table.get(pid, (0, None))[1] == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass  # ended on its own meanwhile


def _since(found: dict[int, int], start: int) -> dict[int, int]:
    return {pid: started for pid, started in found.items() if started >= start}


if __name__ == "__main__":
    watch(int(sys.argv[1]))
