"""One writer per output: a claim created atomically before a job writes anything, and checked before it finishes.

As git's index.lock: the one process that created `.genaug/claim.json` (O_CREAT | O_EXCL) owns the
output, and it names its holder (host, pid, start) for everyone else's refusal. A claim whose process
is gone from this host is stale and taken over, with a message; one from another host is never
guessed dead. Object stores have no atomic create, so there the claim is re-read before the
manifest is written and a job that finds another's claim fails rather than vouch for mixed shards.
"""

from __future__ import annotations

import json
import os
import posixpath
import socket
import sys
import time
import uuid
from dataclasses import asdict, dataclass

from gen_aug.errors import GenaugError
from gen_aug.output.storage import Location

CLAIM_FILE = ".genaug/claim.json"


@dataclass(frozen=True)
class Claim:
    host: str
    pid: int
    started_at: str  # UTC, ISO 8601
    token: str  # tells two claims of one pid apart
    pid_started: int | None = None  # the process's start in clock ticks since boot: a reused pid is not its holder

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.started_at}"


def read_claim(location: Location) -> Claim | None:
    """The claim on the output, None where there is none; an unreadable one is a claim of unknown holder."""
    if not location.exists(CLAIM_FILE):
        return None
    try:
        return Claim(**json.loads(location.read(CLAIM_FILE, max_bytes=4096)))
    except FileNotFoundError:
        return None  # released or taken over since it was seen
    except (OSError, ValueError, TypeError):
        return Claim("an unknown host", -1, "an unknown time", "")


def is_stale(claim: Claim) -> bool:
    """Whether the claim's process is known to be gone: only ever said of a process of this host."""
    if claim.host != socket.gethostname() or claim.pid <= 0:
        return False
    try:
        os.kill(claim.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return claim.pid_started is not None and _process_start(claim.pid) not in (None, claim.pid_started)


def _process_start(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (Linux); None where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return int(stream.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def refuse_live_claim(location: Location, out: str, own: Claim | None = None) -> None:
    """Refuse an output another live job holds (not `own`); a stale claim is left for `claim_output` to take over."""
    claim = read_claim(location)
    if claim is not None and claim != own and not is_stale(claim):
        raise GenaugError(
            f"--out {out!r}: another genaug job is writing there ({claim.describe()}; expected one writer per "
            f"output: wait for it to end, or delete {location.path(CLAIM_FILE)} if that job is gone)"
        )


def claim_output(location: Location, out: str) -> Claim:
    """Take the output for this process, taking over a stale claim; refuse one held by a live job."""
    claim = Claim(socket.gethostname(), os.getpid(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  uuid.uuid4().hex, _process_start(os.getpid()))
    payload = (json.dumps(asdict(claim), sort_keys=True) + "\n").encode()
    took_over = False  # whether this job removed a stale claim
    for _ in range(2):
        if location.create_exclusive(CLAIM_FILE, payload):
            return claim
        holder = read_claim(location)
        if holder is None:
            continue  # released between the two calls
        if not is_stale(holder):
            if took_over:
                raise GenaugError(
                    f"--out {out!r}: another genaug job took over the stale claim first (now {holder.describe()}; "
                    "expected one writer per output: wait for that job to end)"
                )
            refuse_live_claim(location, out)
        print(f"genaug: {out}: taking over the claim of a job that is gone ({holder.describe()})", file=sys.stderr)
        try:
            location.delete(CLAIM_FILE)
        except FileNotFoundError:
            pass  # another job starting here removed it first: whichever creates the claim next writes
        took_over = True
    raise GenaugError(f"--out {out!r}: could not claim it (expected no other job starting there at the same time)")


def check_claim(location: Location, claim: Claim, out: str) -> None:
    """Before vouching for the output: it must still be this job's."""
    found = read_claim(location)
    if found != claim:
        holder = found.describe() if found is not None else "nobody"
        raise GenaugError(
            f"--out {out!r}: this job's claim was taken over (now {holder}); its shards may be mixed with "
            "another job's, so no manifest was written (expected one writer per output; rerun with --resume)"
        )


def release_claim(location: Location, claim: Claim) -> None:
    """Give the output up; the state folder goes too once nothing else is in it."""
    if read_claim(location) == claim:
        location.delete(CLAIM_FILE)
    location.remove_dir_if_empty(posixpath.dirname(CLAIM_FILE))
