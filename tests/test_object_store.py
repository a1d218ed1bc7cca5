"""`--out s3://...` end to end against an S3-compatible server on 127.0.0.1 (moto in server mode, as pyarrow's own tests use).

The jobs run as a user runs them: `genaug synthesize` in its own process, on its own Ray, with the
credentials in the environment and the endpoint in the URI; verify and the reader run here.

Guards: gen_aug/output/storage.py, gen_aug/output/verification.py, gen_aug/output/reader.py
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gen_aug.output.card import CARD
from gen_aug.output.manifest import MANIFEST
from gen_aug.output.reader import load_synthetic
from gen_aug.output.storage import open_location
from gen_aug.output.verification import verify

REPO = Path(__file__).resolve().parents[1]
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture(scope="module")
def endpoint():
    server_module = pytest.importorskip("moto.server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def bucket(endpoint, monkeypatch, request):
    import boto3

    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    name = "genaug-" + request.node.name.lower().replace("_", "-")[:40]
    boto3.client("s3", endpoint_url=f"http://{endpoint}").create_bucket(Bucket=name)
    return name


def uri(bucket: str, endpoint: str, folder: str = "synth") -> str:
    return f"s3://{bucket}/{folder}?endpoint_override={endpoint}&scheme=http"


def genaug(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gen_aug", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=os.environ | CREDENTIALS)


def synth(snapshot: str, out: str, *more: str) -> subprocess.CompletedProcess:
    return genaug("synthesize", "--model", snapshot, "--out", out, "--n", "30", "--shard-size", "10",
                  "--workers", "1", *more)


def test_synthesize_verify_read_and_resume_on_s3(digits_snapshot, bucket, endpoint, tmp_path):
    out = uri(bucket, endpoint)
    made = synth(digits_snapshot, out, "--card")
    assert made.returncode == 0, made.stderr[-2000:]
    location = open_location(out)
    assert sorted(location.list_files()) == sorted([  # no temporaries, no state
        CARD, MANIFEST, "data/train-00000-of-00003.parquet", "data/train-00001-of-00003.parquet",
        "data/train-00002-of-00003.parquet"])
    assert verify(out).ok
    checked = genaug("verify", out)
    assert checked.returncode == 0 and checked.stdout.startswith("ok:"), checked.stdout + checked.stderr

    local = tmp_path / "local"
    same = synth(digits_snapshot, str(local))
    assert same.returncode == 0, same.stderr[-2000:]
    remote, here = load_synthetic(out), load_synthetic(str(local))
    assert np.array_equal(remote.images, here.images) and np.array_equal(remote.labels, here.labels)

    location.delete("data/train-00001-of-00003.parquet")
    assert not verify(out).ok
    resumed = synth(digits_snapshot, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    manifest = json.loads(location.read(MANIFEST))
    assert manifest["images_resumed"] == 20 and verify(out).ok
    assert location.read("data/train-00001-of-00003.parquet") == (local / "data/train-00001-of-00003.parquet").read_bytes()


def test_a_second_job_into_a_finished_s3_output_is_refused_and_overwrite_replaces_it(digits_snapshot, bucket, endpoint):
    out = uri(bucket, endpoint)
    assert synth(digits_snapshot, out).returncode == 0
    before = open_location(out).read(MANIFEST)
    again = synth(digits_snapshot, out, "--seed", "1")
    errors = [line for line in again.stderr.splitlines() if line.startswith("Error:")]
    assert again.returncode == 1 and len(errors) == 1 and "Traceback" not in again.stderr
    assert open_location(out).read(MANIFEST) == before
    replaced = synth(digits_snapshot, out, "--seed", "1", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert json.loads(open_location(out).read(MANIFEST))["plan"]["seed"] == 1 and verify(out).ok


def test_verify_of_a_missing_bucket_says_the_bucket_is_missing(endpoint, monkeypatch):
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    report = genaug("verify", uri("no-such-bucket", endpoint))
    errors = [line for line in report.stderr.splitlines() if line.startswith("Error:")]
    assert report.returncode == 1 and "Traceback" not in report.stderr, report.stderr
    assert errors == [f"Error: verify {uri('no-such-bucket', endpoint)!r}: no bucket 'no-such-bucket' there "
                      "(expected the folder of a finished genaug synthesize)"]
