"""`genaug evaluate` on a tiny synthetic output with a tiny classifier budget: the report, its inputs, bad inputs."""

import hashlib
import json
import shutil

import pytest
from click.testing import CliRunner

from gen_aug.cli import main
from gen_aug.evaluation.evaluate import EvaluationOptions, real_splits
from gen_aug.synthesis.manifest import MANIFEST, verify
from gen_aug.synthesis.driver import SynthesisOptions, synthesize

pytestmark = pytest.mark.ray

BUDGET = ["--seeds", "0,1", "--steps", "20", "--sample-size", "150"]


@pytest.fixture(scope="module")
def synthetic(ray_local, digits_snapshot, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate") / "synth"
    synthesize(SynthesisOptions(digits_snapshot, str(out), n=200, shard_size=100, seed=1, workers=1, progress=False))
    return out


def evaluate(*arguments):
    return CliRunner().invoke(main, ["evaluate", *arguments])


def test_evaluate_writes_the_report_and_prints_a_summary(synthetic, private_classifier_cache, tmp_path):
    result = evaluate("--real", "builtin:digits", "--synthetic", str(synthetic), "--report", str(tmp_path / "r"), *BUDGET)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [report["data"][name]["images"] for name in ("real_train", "real_test", "synthetic")] == [1442, 355, 200]
    assert report["settings"]["seeds"] == [0, 1] and report["settings"]["classifier"]["steps"] == 20
    assert report["settings"]["sample_size"] == 150
    assert report["inputs"]["synthetic_manifest_sha256"] == hashlib.sha256((synthetic / MANIFEST).read_bytes()).hexdigest()
    assert report["augmentation"]["synthetic_images_added"] == 200  # ratio 1 asks 1,442: every synthetic image goes in
    assert len(report["tstr"]["accuracy_per_seed"]) == 2
    assert {p.name for p in (tmp_path / "r").iterdir()} == {
        "report.json", "report.md", "samples.png", "per_class_accuracy.png"
    }
    for line in ("reference", "consistency", "Fréchet", "precision/recall", "TSTR", "real only", "real + synthetic"):
        assert f"\n{line} " in "\n" + result.output
    assert verify(str(synthetic)).ok  # nothing was written into the synthetic folder


def test_a_real_share_repeats_the_real_images_and_the_report_says_so(synthetic, private_classifier_cache, tmp_path):
    result = evaluate("--real", "builtin:digits?limit_per_class=10", "--synthetic", str(synthetic), "--report",
                      str(tmp_path / "r"), "--mix-ratio", "2", "--real-share", "0.5", *BUDGET)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    augmentation = report["augmentation"]
    # 100 real images, 2 synthetic per real one: 200 synthetic, so half real takes the real images twice.
    assert augmentation["synthetic_images_added"] == 200 and augmentation["real_repeats"] == 2
    assert augmentation["real_plus_synthetic"]["train_images"] == 2 * 100 + 200
    assert report["settings"]["real_share"] == 0.5 and report["inputs"]["real_share"] == 0.5
    assert "real images x2" in (tmp_path / "r" / "report.md").read_text() and "real images x2" in result.output


def test_the_test_split_keeps_resolution_but_not_the_train_limit():
    train, test = real_splits("builtin:digits?limit_per_class=5&resolution=16")
    assert len(train.images) == 50 and train.class_counts().tolist() == [5] * 10
    assert len(test.images) == 355 and test.shape == train.shape == (1, 16, 16)


def test_the_default_report_folder_sits_beside_the_output(tmp_path):
    assert EvaluationOptions("builtin:digits", f"{tmp_path}/synth/").report_dir() == tmp_path / "synth-report"


def corrupt(synthetic, tmp_path):
    out = tmp_path / "corrupt"
    shutil.copytree(synthetic, out)
    data = bytearray((out / "shard-00001.parquet").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / "shard-00001.parquet").write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(
    "real, make_synthetic, report, message",
    [
        ("builtin:digits", lambda synthetic, tmp: tmp / "none", "report", "no manifest.json"),
        ("builtin:digits?split=test", lambda synthetic, tmp: synthetic, "report", "split=test (expected the train split"),
        ("builtin:digits", lambda synthetic, tmp: synthetic, "synth/report", "inside the synthetic folder"),
        ("builtin:digits", corrupt, "report", "shard 1: sha256"),
    ],
)
def test_bad_inputs_are_one_line_errors_and_write_no_report(synthetic, tmp_path, real, make_synthetic, report, message):
    out = make_synthetic(synthetic, tmp_path)
    report_dir = synthetic / "report" if report == "synth/report" else tmp_path / report
    result = evaluate("--real", real, "--synthetic", str(out), "--report", str(report_dir), *BUDGET)
    assert result.exit_code == 1 and "Traceback" not in result.output
    last = result.output.splitlines()[-1]
    assert last.startswith("Error: ") and message in last
    assert not report_dir.exists()
