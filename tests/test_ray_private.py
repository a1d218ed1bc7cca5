"""The private Ray of a job: a token of its own rather than the shared ~/.ray/auth_token, and a watcher for a killed driver.

Guards: gen_aug/synthesis/session.py, gen_aug/synthesis/reaper.py
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gen_aug.synthesis.reaper import descendants

REPO = Path(__file__).resolve().parents[1]

# Starts genaug's private Ray and tries to join it twice from outside: as a local user who holds
# only the shared token file, and with the job's own environment. Both keep to loopback as the job's Ray does.
SCRIPT = """
import json, os, subprocess, sys
from gen_aug.synthesis.session import ray_session
join = ("import ray, sys; from ray._private import ray_constants; ray_constants.ENABLE_RAY_CLUSTER = False; "
        "ray.init(address=sys.argv[1]); print('joined')")
with ray_session(None) as ray:
    gcs = ray.get_runtime_context().gcs_address
    token = os.environ.get("RAY_AUTH_TOKEN")
    shared_only = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    outsider = subprocess.run([sys.executable, "-c", join, gcs], env=shared_only, capture_output=True, text=True,
                              timeout=120)
    insider = subprocess.run([sys.executable, "-c", join, gcs], capture_output=True, text=True, timeout=120)
print(json.dumps({"token": token, "outsider": "joined" in outsider.stdout,
                  "refused": "InvalidAuthToken" in outsider.stderr, "insider": "joined" in insider.stdout,
                  "after": {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}}))
"""


@pytest.mark.slow
@pytest.mark.ray
def test_private_ray_has_its_own_token_and_the_shared_one_cannot_join(tmp_path):
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    shared = home / ".ray" / "auth_token"
    shared.write_text("0" * 64)  # what any local user could read, were it the job's
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")} | {"HOME": str(home)}
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["token"] and seen["token"] != shared.read_text()
    assert seen["insider"] and not seen["outsider"] and seen["refused"]
    assert seen["after"] == {"RAY_AUTH_MODE": None, "RAY_AUTH_TOKEN": None}  # the user's own settings again
    assert shared.read_text() == "0" * 64 and sorted(p.name for p in (home / ".ray").iterdir()) == ["auth_token"]


def test_descendants_follow_every_level_and_nothing_beside():
    # pid: (parent, start time); 10 is the driver, 11 its raylet, 12 an agent of the raylet, 20 a stranger.
    table = {10: (1, 100), 11: (10, 101), 12: (11, 102), 13: (12, 103), 20: (1, 50), 21: (20, 51)}
    assert descendants({10}, table) == {11: 101, 12: 102, 13: 103}
    assert descendants({12, 20}, table) == {13: 103, 21: 51}
    assert descendants({99}, table) == {}
