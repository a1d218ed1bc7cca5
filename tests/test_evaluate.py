"""`genaug evaluate` on a tiny synthetic output with a tiny classifier budget: the report, its inputs, bad inputs.

Guards: gen_aug/evaluation/evaluate.py, gen_aug/evaluation/commands.py, gen_aug/evaluation/options.py
"""

import hashlib
import json
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gen_aug.cli import main
from gen_aug.data import load_data
from gen_aug.evaluation.evaluate import load_test_set, real_splits
from gen_aug.evaluation.options import EvaluationOptions
from gen_aug.output.manifest import MANIFEST
from gen_aug.output.verification import verify
from gen_aug.synthesis.driver import synthesize
from gen_aug.synthesis.options import SynthesisOptions

pytestmark = pytest.mark.ray

BUDGET = ["--seeds", "0,1", "--steps", "20", "--sample-size", "150"]
FIGURES = {"arms.png", "per_class_recall.png", "memorisation.png", "samples.png"}


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
    assert report["mixing"]["synthetic_images_added"] == 200  # ratio 1 asks 1,442: every synthetic image goes in
    assert sum(report["mixing"]["synthetic_wanted_per_class"]) == 1442
    shortfall = "the proportional mix asked 1,442 synthetic images and the output has 200 ('0' 20 of 143,"
    assert shortfall in result.output and shortfall in (tmp_path / "r" / "report.md").read_text()
    assert len(report["tstr"]["accuracy"]["per_seed"]) == 2
    assert [arm["name"] for arm in report["arms"]] == list(EvaluationOptions.arms)
    assert report["inputs"]["arms"] == list(EvaluationOptions.arms) and report["inputs"]["metric"] == "accuracy"
    assert {p.name for p in (tmp_path / "r").iterdir()} == {"report.json", "report.md", *FIGURES}
    lines = ("reference", "consistency", "Fréchet", "precision/recall", "memorisation", "TSTR", "real", "classical",
             "synthetic", "classical+synthetic", "verdict")
    for line in lines:
        assert f"\n{line} " in "\n" + result.output
    assert "seed 1" in result.output  # the per-run progress bars, on stderr
    # Before any run: what it trains and roughly how long, TSTR and 4 arms at 2 seeds.
    assert re.search(r"(^|\n)runs +10 classifier runs of 20 steps, 1 at once; roughly [0-9]+ s here\n", result.stderr)
    assert verify(str(synthetic)).ok  # nothing was written into the synthetic folder


def test_a_real_share_repeats_the_real_images_and_the_report_says_so(synthetic, private_classifier_cache, tmp_path):
    result = evaluate("--real", "builtin:digits?limit_per_class=10", "--synthetic", str(synthetic), "--report",
                      str(tmp_path / "r"), "--mix-ratio", "2", "--real-share", "0.5", *BUDGET)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    mixing = report["mixing"]
    # 100 real images, 2 synthetic per real one: 200 synthetic, so half real takes the real images twice.
    assert mixing["synthetic_images_added"] == 200 and mixing["real_repeats"] == 2
    assert next(arm for arm in report["arms"] if arm["name"] == "synthetic")["train_images"] == 2 * 100 + 200
    assert report["settings"]["real_share"] == 0.5 and report["inputs"]["real_share"] == 0.5
    assert "real images repeated x2" in (tmp_path / "r" / "report.md").read_text()
    assert "real train x2 + 200 synthetic" in result.output
    assert "mix asked" not in result.output  # 200 asked, 20 of each class, and the output has them


def test_a_balance_mix_tops_up_the_small_classes_and_the_report_names_the_arms(synthetic, private_classifier_cache,
                                                                                tmp_path):
    result = evaluate("--real", "builtin:digits?limit_per_class=10", "--synthetic", str(synthetic), "--report",
                      str(tmp_path / "r"), "--mix", "balance", "--mix-ratio", "0.5", "--arms",
                      "real,synthetic,top-up,reweighted", "--metric", "balanced_accuracy", "--flip", *BUDGET)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    available = np.bincount(load_synthetic_labels(synthetic), minlength=10)
    assert report["mixing"]["synthetic_per_class"] == np.minimum(15 - 10, available).tolist()
    assert [arm["name"] for arm in report["arms"]] == ["real", "synthetic", "top-up", "reweighted"]
    assert report["settings"]["metric"] == "balanced_accuracy" and report["settings"]["flip"] is True
    assert "balanced accuracy, paired by seed" in result.output


def load_synthetic_labels(out):
    from gen_aug.output.reader import load_synthetic

    return load_synthetic(str(out), load_data("builtin:digits").class_names).labels


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--arms", "real,mixup"], "'--arms': 'real,mixup' (expected arms from real, classical"),
        (["--arms", "synthetic"], "real among them"),
        (["--classifier", "vit"], "'vit' is not one of 'small-cnn', 'resnet18'"),
        (["--mix", "balance", "--real-share", "0.5"], "real_share = 0.5 (expected none with mix = 'balance')"),
    ],
)
def test_bad_arm_options_are_one_line_errors(arguments, message, tmp_path):
    result = evaluate("--real", "builtin:digits", "--synthetic", str(tmp_path), *arguments)
    assert result.exit_code in (1, 2) and "Traceback" not in result.output
    assert message in result.output.splitlines()[-1]


def test_the_test_split_keeps_resolution_but_not_the_train_limit():
    train, test = real_splits("builtin:digits?limit_per_class=5&resolution=16")
    assert len(train.images) == 50 and train.class_counts().tolist() == [5] * 10
    assert len(test.images) == 355 and test.shape == train.shape == (1, 16, 16)


def test_the_default_report_folder_sits_beside_the_output(tmp_path):
    options = EvaluationOptions(real="builtin:digits", synthetic=f"{tmp_path}/synth/")
    assert options.report_dir() == tmp_path / "synth-report"


def write_pngs(folder, classes, per_class=10, side=16, mode="RGB"):
    """folder/<class>/<i>.png: the first `per_class` real test digits of each class, enlarged to side x side."""
    test = load_data("builtin:digits?split=test")
    for label, name in enumerate(classes):
        (folder / name).mkdir(parents=True)
        for i, image in enumerate(test.images[test.labels == label][:per_class]):
            picture = Image.fromarray(image[0]).resize((side, side), Image.NEAREST).convert(mode)
            picture.save(folder / name / f"{i:02d}.png")
    return folder


def test_a_test_set_of_any_spec_replaces_the_test_split(synthetic, private_classifier_cache, tmp_path):
    pngs = write_pngs(tmp_path / "pngs", [str(digit) for digit in range(10)])
    spec = f"folder:{pngs}?resolution=8&channels=1"
    result = evaluate("--real", "builtin:digits", "--test", spec, "--synthetic", str(synthetic), "--report",
                      str(tmp_path / "r"), *BUDGET)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    expected = load_data(spec)  # read as `genaug data` reads it: the folder's own train split, 8 of every 10
    assert report["data"]["real_test"]["images"] == len(expected.images) == 80
    assert report["data"]["real_test"]["fingerprint"] == expected.fingerprint
    assert report["data"]["real_train"]["images"] == 1442 and report["inputs"]["test"] == spec
    assert len(report["tstr"]["accuracy"]["per_seed"]) == 2


def test_a_test_set_converted_to_the_train_shape_is_taken_as_it_is(tmp_path):
    pngs = write_pngs(tmp_path / "pngs", [str(digit) for digit in range(10)], mode="L")
    train = load_data("builtin:digits")
    test = load_test_set(f"folder:{pngs}?resolution=8&split=test", train)
    assert test.shape == train.shape and test.class_counts().tolist() == [2] * 10


@pytest.mark.parametrize(
    "make_spec, message",
    [
        (lambda tmp: "builtin:digits?split=test&resolution=16",
         "--test 'builtin:digits?split=test&resolution=16': images of 1x16x16 (expected --real's train split's 1x8x8"),
        (lambda tmp: f"folder:{write_pngs(tmp / 'rgb', [str(digit) for digit in range(10)])}",
         "images of 3x16x16 (expected --real's train split's 1x8x8, channels x height x width; ?resolution"),
        (lambda tmp: f"folder:{write_pngs(tmp / 'two', ['a', 'b'], side=8, mode='L')}",
         "classes a, b (expected --real's train split's classes 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)"),
    ],
)
def test_a_test_set_of_other_classes_or_shape_is_a_one_line_error(synthetic, tmp_path, make_spec, message):
    spec = make_spec(tmp_path)
    result = evaluate("--real", "builtin:digits", "--test", spec, "--synthetic", str(synthetic), "--report",
                      str(tmp_path / "r"), *BUDGET)
    assert result.exit_code == 1 and "Traceback" not in result.output
    last = result.output.splitlines()[-1]
    assert last.startswith(f"Error: --test {spec!r}: ") and message in last
    assert not (tmp_path / "r").exists()


def corrupt(synthetic, tmp_path):
    out = tmp_path / "corrupt"
    shutil.copytree(synthetic, out)
    shard = next(out.glob("data/train-00001-of-*.parquet"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(
    "real, make_synthetic, report, message",
    [
        ("builtin:digits", lambda synthetic, tmp: tmp / "none", "report", "no _manifest.json"),
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


@pytest.mark.ray
def test_without_real_evaluate_reads_the_data_the_model_was_trained_on(ray_local, private_classifier_cache, tmp_path):
    from gen_aug.checkpoint import save_snapshot
    from gen_aug.models import build_model

    def output(name: str, data: dict | None) -> str:
        model = build_model("cgan", {"resolution": 8, "channels": 1, "num_classes": 10, "z_dim": 8, "width": 4})
        meta = {"class_names": list(trained.class_names), **({"data": data} if data else {})}
        save_snapshot(tmp_path / f"{name}.safetensors", model, meta)
        out = str(tmp_path / name)
        synthesize(SynthesisOptions(str(tmp_path / f"{name}.safetensors"), out, n=100, workers=1, progress=False))
        return out

    trained = load_data("builtin:digits?limit_per_class=10")
    recorded = output("recorded", {"description": trained.description, "fingerprint": trained.fingerprint})
    result = evaluate("--synthetic", recorded, "--report", str(tmp_path / "r"), "--arms", "real,synthetic", *BUDGET)
    assert result.exit_code == 0, result.output
    assert f"real         {trained.description} (the model's training data" in result.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["data"]["real_train"]["description"] == trained.description
    assert report["data"]["real_train"]["images"] == 100 == len(trained.images)

    stale = output("stale", {"description": trained.description, "fingerprint": "0" * 64})
    unrecorded = output("unrecorded", None)
    for out, message in [(stale, "reads other images today than it did then (expected --real SPEC"),
                         (unrecorded, "manifest does not record the data its model was trained on (expected --real")]:
        refused = evaluate("--synthetic", out, "--report", str(tmp_path / "refused"), *BUDGET)
        assert refused.exit_code == 1 and message in refused.output and "Traceback" not in refused.output
        assert not (tmp_path / "refused").exists()
