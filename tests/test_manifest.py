"""The manifest and `genaug verify`: missing, corrupt and unlisted files found; foreign paths refused, never read.

Guards: gen_aug/output/manifest.py, gen_aug/output/verification.py, gen_aug/output/records.py,
    gen_aug/synthesis/commands.py
"""

import json

import pytest
from click.testing import CliRunner

from gen_aug.checkpoint import load_snapshot, save_snapshot
from gen_aug.cli import main
from gen_aug.errors import GenaugError
from gen_aug.models import build_model
from gen_aug.output.manifest import MANIFEST, build_manifest, finished_records, write_json
from gen_aug.output.plan import make_plan
from gen_aug.output.settings import JobSettings
from gen_aug.output.storage import open_location
from gen_aug.output.verification import verify
from gen_aug.synthesis.worker import ShardWorker

NAMES = ("cat", "dog", "owl")


def write_output(tmp_path, image_format: str) -> tuple:
    """A finished output written by the real shard worker, in-process (no Ray needed to test the manifest)."""
    snapshot_path = tmp_path / "model.safetensors"
    model = build_model("cgan", {"resolution": 8, "channels": 1, "num_classes": 3, "z_dim": 8, "width": 4})
    save_snapshot(snapshot_path, model, {"class_names": list(NAMES)})
    plan = make_plan(NAMES, n=25, shard_size=10, seed=1)
    settings = JobSettings(plan, image_format, load_snapshot(snapshot_path).sha256, "cpu", 256)
    out = tmp_path / "out"
    worker = ShardWorker(snapshot_path.read_bytes(), settings, str(out), 1, 1)
    records = [worker.run_shard(shard.shard_idx) for shard in plan.shards()]
    worker.close()
    manifest = build_manifest(settings, {"sha256": settings.snapshot_sha256}, records, {}, [worker.describe()])
    write_json(open_location(str(out)), MANIFEST, manifest)
    return out, settings


@pytest.fixture(params=["parquet", "png", "raw"])
def output(tmp_path, request):
    return (*write_output(tmp_path, request.param), request.param)


def first_file(out, image_format):
    return out / (f"{NAMES[0]}/0.png" if image_format == "png" else "data/train-00000-of-00003.parquet")


def test_a_finished_output_verifies(output):
    out, _, image_format = output
    report = verify(str(out))
    assert report.ok and report.shards == 3 and report.images == 25
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["totals"]["images"] == 25 and sum(manifest["totals"]["class_counts"]) == 25
    assert [s["rows"] for s in manifest["shards"]] == [10, 10, 5]
    result = CliRunner().invoke(main, ["verify", str(out)])
    assert result.exit_code == 0 and result.output.startswith("ok:")


def test_a_changed_byte_is_corrupt(output):
    out, _, image_format = output
    path = first_file(out, image_format)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    report = verify(str(out))
    assert report.corrupt and report.corrupt[0].startswith("shard 0") and not report.missing
    result = CliRunner().invoke(main, ["verify", str(out)])
    assert result.exit_code == 1 and "corrupt: shard 0" in result.output


def test_missing_and_unlisted_files(output):
    out, _, image_format = output
    first_file(out, image_format).unlink()
    (out / "stray.txt").write_text("x")
    (out / ".tmp-0123-shard-00009.parquet").write_bytes(b"partial")
    report = verify(str(out))
    assert report.missing == [first_file(out, image_format).relative_to(out).as_posix()]
    assert report.unlisted == [".tmp-0123-shard-00009.parquet", "stray.txt"]
    assert not report.ok


@pytest.mark.parametrize("path", ["../outside.parquet", "/etc/passwd", "sub/../../x.parquet",
                                  "data/train-00001-of-00003.parquet"])
def test_manifest_paths_outside_the_plan_are_refused(tmp_path, path):
    out, _ = write_output(tmp_path, "parquet")
    (tmp_path / "outside.parquet").write_bytes((out / "data/train-00000-of-00003.parquet").read_bytes())
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["shards"][0]["file"] = path
    (out / MANIFEST).write_text(json.dumps(manifest))
    report = verify(str(out))
    assert len(report.refused) == 1 and path in report.refused[0]
    assert ("escapes the output folder" in report.refused[0]) == (path != "data/train-00001-of-00003.parquet")
    assert "shard 0 (no record in the manifest)" in report.missing
    assert "data/train-00000-of-00003.parquet" in report.unlisted


@pytest.mark.parametrize("content, message", [(None, "no _manifest.json"), ("{not json", "unreadable"),
                                               ('{"plan": {}}', "not a genaug plan")])
def test_no_or_broken_manifest_is_a_one_line_error(tmp_path, content, message):
    (tmp_path / "out").mkdir()
    if content is not None:
        (tmp_path / "out" / MANIFEST).write_text(content)
    with pytest.raises(GenaugError, match=message):
        verify(str(tmp_path / "out"))
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "out")])
    assert result.exit_code == 1 and result.output.startswith("Error:") and result.output.count("\n") == 1


def test_resume_keeps_only_shards_that_still_hash_as_recorded(output):
    out, settings, image_format = output
    location = open_location(str(out))
    assert sorted(finished_records(location, settings)) == [0, 1, 2]
    path = first_file(out, image_format)
    path.write_bytes(path.read_bytes()[:-1])
    assert sorted(finished_records(location, settings)) == [1, 2]
