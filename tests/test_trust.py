"""Trust under abuse: one writer per output, nothing outside it touched, foreign files never deleted, links never followed.

Guards: gen_aug/output/claim.py, gen_aug/output/ownership.py, gen_aug/output/storage.py,
    gen_aug/output/verification.py, gen_aug/output/manifest.py
"""

import json
import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from gen_aug.cli import main
from gen_aug.errors import GenaugError
from gen_aug.output.claim import CLAIM_FILE, claim_output
from gen_aug.synthesis.driver import synthesize
from gen_aug.output.manifest import MANIFEST
from gen_aug.synthesis.options import SynthesisOptions
from gen_aug.output.storage import LocalLocation
from gen_aug.output.verification import verify

pytestmark = pytest.mark.ray


def tree(folder) -> dict:
    """Every entry below `folder` (links as their targets' names, never followed) with its bytes."""
    found = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        found[key] = f"-> {os.readlink(path)}" if path.is_symlink() else path.read_bytes() if path.is_file() else None
    return found


def run(*args) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture
def job(ray_local, digits_snapshot, tmp_path):
    def make(out, fmt="parquet", **options):
        return synthesize(SynthesisOptions(digits_snapshot, str(out), n=40, shard_size=10, workers=1,
                                           progress=False, format=fmt, **options))
    return make


def synth_args(snapshot, out, *more):
    return ["synthesize", "--model", snapshot, "--out", out, "--n", "40", "--shard-size", "10", "--workers", "1", *more]


def test_a_live_claim_refuses_a_second_writer_naming_it(job, digits_snapshot, tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".genaug").mkdir(parents=True)
        claim = {"host": os.uname().nodename, "pid": holder.pid, "started_at": "then", "token": "x"}
        (out / CLAIM_FILE).write_text(json.dumps(claim))
        before = tree(out)
        code, output = run(*synth_args(digits_snapshot, out))
        assert code == 1 and output.count("\n") == 1
        assert f"another genaug job is writing there (pid {holder.pid}" in output
        assert tree(out) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_claim_of_a_process_that_is_gone_is_taken_over(job, digits_snapshot, tmp_path):
    out = tmp_path / "out"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / ".genaug").mkdir(parents=True)
    claim = {"host": os.uname().nodename, "pid": int(gone.stdout), "started_at": "then", "token": "x"}
    (out / CLAIM_FILE).write_text(json.dumps(claim))
    code, output = run(*synth_args(digits_snapshot, out, "--resume"))
    assert code == 0, output
    assert verify(str(out)).ok and not (out / ".genaug").exists()


def test_overwrite_of_a_folder_genaug_did_not_write_deletes_nothing(job, digits_snapshot, tmp_path):
    app = tmp_path / "my-app"
    app.mkdir()
    (app / MANIFEST).write_text('{"name": "my-app"}')
    (app / "index.html").write_text("<html></html>")
    before = tree(app)
    code, output = run(*synth_args(digits_snapshot, app, "--overwrite"))
    assert code == 1 and output.count("\n") == 1 and "genaug" in output
    assert tree(app) == before


def test_overwrite_replaces_genaug_files_and_keeps_the_users(job, digits_snapshot, tmp_path):
    out = tmp_path / "out"
    job(out, "png", seed=1)
    (out / "README.txt").write_text("my notes")
    (out / "0" / "notes.txt").write_text("inside a class folder")
    code, output = run(*synth_args(digits_snapshot, out, "--overwrite", "--format", "raw"))
    assert code == 0, output
    assert (out / "README.txt").read_text() == "my notes"
    assert (out / "0" / "notes.txt").read_text() == "inside a class folder"
    assert not list(out.rglob("*.png")) and sorted(p.name for p in out.glob("data/*")) == [
        f"train-0000{i}-of-00004.parquet" for i in range(4)]
    assert sorted(verify(str(out)).unlisted) == ["0/notes.txt", "README.txt"]


@pytest.mark.parametrize("flag", ["--overwrite", "--resume"])
def test_a_folder_whose_records_are_unreadable_is_refused_unchanged(job, digits_snapshot, tmp_path, flag):
    # Unreadable records vouch for nothing: the files there may be the user's, so none is deleted.
    out = tmp_path / "out"
    job(out)
    (out / MANIFEST).write_text((out / MANIFEST).read_text()[:100])  # cut short
    before = tree(out)
    code, output = run(*synth_args(digits_snapshot, out, flag))
    assert code == 1 and output.count("\n") == 1 and "unreadable" in output, output
    assert tree(out) == before


@pytest.mark.parametrize("flag", ["--overwrite", "--resume"])
def test_a_users_numbered_images_beside_their_own_manifest_survive(digits_snapshot, tmp_path, flag):
    # A user's folder of cats/001.png with a manifest.json of its own: once it held names genaug
    # writes, and a manifest genaug could not parse, and it was deleted.
    out = tmp_path / "photos"
    (out / "cats").mkdir(parents=True)
    (out / "data").mkdir()
    (out / "cats" / "001.png").write_bytes(b"a cat")
    (out / "data" / "train-00000-of-00001.parquet").write_bytes(b"a table")
    (out / "manifest.json").write_text('{"files": ["cats/001.png"]}')
    before = tree(out)
    code, output = run(*synth_args(digits_snapshot, out, flag))
    assert code == 1 and output.count("\n") == 1, output
    assert tree(out) == before


def test_resume_never_writes_through_a_linked_class_folder(job, digits_snapshot, tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    job(out, "png")
    outside.mkdir()
    for png in (out / "3").iterdir():
        png.unlink()
    (out / "3").rmdir()
    (out / "3").symlink_to(outside, target_is_directory=True)  # class 3's images now "verify" nowhere
    code, output = run(*synth_args(digits_snapshot, out, "--format", "png", "--resume"))
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert code == 1 and len(errors) == 1 and "not a real folder" in errors[0] and "Traceback" not in output
    assert list(outside.iterdir()) == []


def test_a_linked_state_folder_is_never_written_through(job, digits_snapshot, tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / ".genaug").symlink_to(outside, target_is_directory=True)
    code, output = run(*synth_args(digits_snapshot, out, "--resume"))
    assert code != 0 and "Traceback" not in output
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("replacement", ["symlink to /dev/zero", "fifo", "symlink outside"])
def test_verify_reads_no_link_or_special_file_in_place_of_a_shard(job, tmp_path, replacement):
    out = tmp_path / "out"
    job(out)
    shard = out / "data/train-00001-of-00004.parquet"
    if replacement == "fifo":
        shard.unlink()
        os.mkfifo(shard)
    else:
        target = "/dev/zero" if "zero" in replacement else tmp_path / "copy.parquet"
        if target != "/dev/zero":
            target.write_bytes(shard.read_bytes())
        shard.unlink()
        shard.symlink_to(target)
    report = verify(str(out))  # returns: no hang on the FIFO, no endless read of /dev/zero
    assert [item.split(" (")[0] for item in report.corrupt] == ["shard 1"]
    code, output = run("verify", out)
    assert code == 1 and "corrupt: shard 1" in output


def test_an_over_long_out_is_one_error_line(job, digits_snapshot, tmp_path):
    code, output = run(*synth_args(digits_snapshot, tmp_path / ("x" * 300)))
    assert code == 1 and output.count("\n") == 1 and output.startswith("Error:") and "Traceback" not in output


def test_a_damaged_state_resumes_from_the_manifest(job, digits_snapshot, tmp_path):
    out = tmp_path / "out"
    first = job(out)
    (out / ".genaug").mkdir()
    (out / ".genaug" / "job.json").write_text('{"plan": ')  # cut short by a crash
    code, output = run(*synth_args(digits_snapshot, out, "--resume"))
    assert code == 0, output
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["images_resumed"] == 40 and verify(str(out)).ok
    assert [s["sha256"] for s in manifest["shards"]] == [s["sha256"] for s in first["shards"]]


class RivalTakesOverFirst(LocalLocation):
    """An output where another job, which also found the claim stale, removes it just before this one does and
    creates its own claim just after: the interleaving of a real race, on real files."""

    def __init__(self, root: str, rival: dict):
        super().__init__(root)
        self.rival = rival

    def delete(self, relative: str) -> None:
        if relative == CLAIM_FILE:
            os.remove(self.path(relative))  # the rival's delete
            try:
                super().delete(relative)  # this job's, which finds nothing there
            finally:
                with open(self.path(relative), "x") as stream:  # the rival's claim
                    json.dump(self.rival, stream)
            return
        super().delete(relative)


def test_the_loser_of_a_stale_claim_race_is_told_another_job_took_it(tmp_path):
    out = tmp_path / "out"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / ".genaug").mkdir(parents=True)
    host = socket.gethostname()
    (out / CLAIM_FILE).write_text(json.dumps({"host": host, "pid": int(gone.stdout), "started_at": "then",
                                              "token": "x"}))
    rival = {"host": host, "pid": os.getppid(), "started_at": "now", "token": "y"}  # a live process, not this one
    with pytest.raises(GenaugError) as error:
        claim_output(RivalTakesOverFirst(str(out), rival), str(out))
    assert str(error.value) == (f"--out {str(out)!r}: another genaug job took over the stale claim first (now pid "
                                f"{os.getppid()} on {host} since now; expected one writer per output: wait for that "
                                "job to end)")
    assert json.loads((out / CLAIM_FILE).read_text()) == rival  # the winner's claim stands
