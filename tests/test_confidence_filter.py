"""--min-confidence: exactly n images, each one its class's confident candidate, the same for any worker count.

Guards: gen_aug/synthesis/filter.py, gen_aug/output/manifest.py, gen_aug/output/encoding.py
"""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from gen_aug.checkpoint import load_snapshot
from gen_aug.classifiers.classifier import ClassifierConfig, reference_classifier
from gen_aug.cli import main
from gen_aug.data import load_data
from gen_aug.errors import GenaugError
from gen_aug.output.manifest import MANIFEST
from gen_aug.output.verification import verify
from gen_aug.classifiers.classifier import REFERENCE_SEED
from gen_aug.output.plan import make_plan
from gen_aug.output.reader import SyntheticImages
from gen_aug.sampling import generate_uint8
from gen_aug.synthesis.driver import synthesize
from gen_aug.synthesis.options import SynthesisOptions

pytestmark = pytest.mark.ray

FAST = ClassifierConfig(width=4, feature_dim=16, steps=30, batch_size=64)
N, SHARD_SIZE, SEED = 300, 100, 3


@pytest.fixture(scope="module")
def judge(private_classifier_cache):
    return reference_classifier(load_data("builtin:digits"), FAST, seed=REFERENCE_SEED)


@pytest.fixture(scope="module")
def threshold(judge, digits_snapshot) -> float:
    """A threshold every class passes about half the time with this (untrained) generator: some rejections, no hopeless class."""
    plan = make_plan(load_data("builtin:digits").class_names, n=N, seed=SEED)
    labels = plan.labels(0, N)
    images = generate_uint8(load_snapshot(digits_snapshot).model, SEED, torch.arange(N), torch.from_numpy(labels), "cpu")
    own = judge.predict_proba(images.numpy())[np.arange(N), labels]
    return float(min(np.median(own[labels == label]) for label in range(10)))


def filtered(digits_snapshot, out, threshold, workers=1, image_format="parquet") -> dict:
    return synthesize(SynthesisOptions(
        digits_snapshot, str(out), n=N, shard_size=SHARD_SIZE, seed=SEED, workers=workers, format=image_format,
        progress=False, min_confidence=threshold, classifier=FAST, data="builtin:digits",
    ))


@pytest.fixture(scope="module")
def one_worker(ray_local, digits_snapshot, threshold, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "out"
    return out, filtered(digits_snapshot, out, threshold, workers=1)


def test_exactly_n_images_each_confident_and_reproducible_from_its_latent(one_worker, judge, threshold, digits_snapshot):
    out, manifest = one_worker
    assert verify(str(out)).ok and manifest["totals"]["images"] == N
    table = pq.read_table(sorted(out.glob("data/*.parquet")))
    latent = table.column("latent_index").to_numpy()
    index, labels = table.column("index").to_numpy(), table.column("label").to_numpy()
    assert np.array_equal(index, np.arange(N)) and np.array_equal(latent % N, index)
    assert (latent != index).any(), "a threshold at the class median must reject some first candidates"
    dataset = SyntheticImages(out)
    images = torch.stack([dataset[i][0] for i in range(N)]).numpy()
    assert (judge.predict_proba(images)[np.arange(N), labels] >= threshold).all()
    model = load_snapshot(digits_snapshot).model
    again = generate_uint8(model, SEED, torch.from_numpy(latent), torch.from_numpy(labels), "cpu").numpy()
    assert np.array_equal(again, images)


def test_manifest_records_acceptance_per_class_and_overall(one_worker, threshold):
    _, manifest = one_worker
    acceptance = manifest["acceptance"]
    assert manifest["filter"]["min_confidence"] == threshold
    assert acceptance["accepted"] == N and acceptance["candidates"] > N
    assert acceptance["rate"] == pytest.approx(N / acceptance["candidates"])
    assert sum(c["candidates"] for c in acceptance["per_class"]) == acceptance["candidates"]
    assert [c["accepted"] for c in acceptance["per_class"]] == manifest["totals"]["class_counts"]
    assert all(0 < c["rate"] <= 1 for c in acceptance["per_class"])


def test_two_workers_write_the_same_bytes(one_worker, digits_snapshot, threshold, tmp_path):
    out, manifest = one_worker
    other = filtered(digits_snapshot, tmp_path / "two", threshold, workers=2)
    assert [s["sha256"] for s in other["shards"]] == [s["sha256"] for s in manifest["shards"]]
    assert other["acceptance"] == manifest["acceptance"]


def test_png_files_carry_their_latent_index(one_worker, digits_snapshot, threshold, tmp_path):
    out, _ = one_worker
    filtered(digits_snapshot, tmp_path / "png", threshold, image_format="png")
    latent = pq.read_table(sorted(out.glob("data/*.parquet"))).column("latent_index").to_pylist()
    found = {int(p.stem): int(Image.open(p).text["latent_index"]) for p in (tmp_path / "png").rglob("*.png")}
    assert found == dict(enumerate(latent))


def test_resume_refuses_another_threshold(one_worker, digits_snapshot, threshold):
    out, _ = one_worker
    with pytest.raises(GenaugError, match="other filter"):
        synthesize(SynthesisOptions(digits_snapshot, str(out), n=N, shard_size=SHARD_SIZE, seed=SEED, workers=1,
                                    progress=False, min_confidence=threshold / 2, classifier=FAST,
                                    data="builtin:digits", resume=True))


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--min-confidence", "0.5"], "needs the real set"),
        (["--min-confidence", "1.5", "--data", "builtin:digits"], "1.5 is not in the range"),
        (["--min-confidence", "0.5", "--data", "builtin:digits?resolution=16"], "expected the snapshot's classes"),
    ],
)
def test_bad_filter_options_are_one_line_errors(digits_snapshot, tmp_path, arguments, message):
    result = CliRunner().invoke(
        main, ["synthesize", "--model", digits_snapshot, "--n", "10", "--out", str(tmp_path / "out"), *arguments]
    )
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_hopeless_class_is_named(ray_local, digits_snapshot, judge, tmp_path):
    """Above every candidate's confidence nothing passes: the job says which class, instead of looping."""
    with pytest.raises(GenaugError, match=r"class '\d' accepted \d+ of"):
        filtered(digits_snapshot, tmp_path / "out", 1.0 - 1e-12)
    assert not (tmp_path / "out" / MANIFEST).exists()
    assert json.loads((tmp_path / "out" / ".genaug" / "job.json").read_text())["filter"]["min_confidence"] > 0.99


def test_the_bar_shows_the_share_of_candidates_accepted(ray_local, digits_snapshot, threshold, tmp_path, capfd):
    manifest = synthesize(SynthesisOptions(
        digits_snapshot, str(tmp_path / "out"), n=N, shard_size=SHARD_SIZE, seed=SEED, workers=1, progress=True,
        min_confidence=threshold, classifier=FAST, data="builtin:digits",
    ))
    shown = capfd.readouterr().err.replace("\r", "\n").splitlines()
    final = [line for line in shown if line.startswith("synthesize: 100%")][-1]
    expected = manifest["acceptance"]
    assert f"accepted {N / expected['candidates']:.1%} of {expected['candidates'] / 1000:,.1f}k candidates" in final
