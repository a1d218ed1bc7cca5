"""--select useful (gen_aug/synthesis/selection.py): exactly n images, each the least sure of its round's candidates that the
judge labels right within its class's real spread, the same for any worker count, from noise and as variants.

Guards: gen_aug/synthesis/selection.py, gen_aug/synthesis/filter.py, gen_aug/output/settings.py
"""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from gen_aug.checkpoint import load_snapshot
from gen_aug.cli import main
from gen_aug.data import load_data
from gen_aug.classifiers.classifier import REFERENCE_SEED, ClassifierConfig, reference_classifier
from gen_aug.sampling import generate_uint8
from gen_aug.synthesis.driver import synthesize
from gen_aug.output.manifest import MANIFEST, describe_manifest
from gen_aug.synthesis.options import SynthesisOptions
from gen_aug.output.reader import SyntheticImages
from gen_aug.synthesis.selection import MAX_ROUNDS, SPREAD_PERCENTILE, ClassSpread, least_sure_passing
from gen_aug.output.settings import FilterSettings
from gen_aug.output.verification import verify
from gen_aug.variants import variants_uint8

DIGITS = "builtin:digits"
# A judge good enough that about 80% of real train images pass (right label, inside the spread); 3 s to train.
JUDGE = ClassifierConfig(width=4, feature_dim=16, steps=200, batch_size=64)
# The `snapshot` below passes this judge for classes 0 and 1 (about 38% and 86% of candidates), others about never.
N, SHARD_SIZE, SEED, PER_ROUND = 120, 40, 3, 4


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """An untrained tiny cgan of the shape of conftest's snapshot but with its own seed: its weights, and so
    which classes pass the judge, do not depend on what ran before it."""
    from gen_aug.checkpoint import save_snapshot
    from gen_aug.models import build_model

    with torch.random.fork_rng():
        torch.manual_seed(6)
        model = build_model("cgan", {"resolution": 8, "channels": 1, "num_classes": 10, "z_dim": 8, "width": 4})
    path = tmp_path_factory.mktemp("selection-snapshot") / "model.safetensors"
    save_snapshot(path, model, {"class_names": list(load_data(DIGITS).class_names)})
    return str(path)


@pytest.fixture(scope="module")
def judge(private_classifier_cache):
    return reference_classifier(load_data(DIGITS), JUDGE, seed=REFERENCE_SEED)


@pytest.fixture(scope="module")
def spread(judge):
    train = load_data(DIGITS)
    return ClassSpread.of(judge, train.images, train.labels)


def useful_job(snapshot, out, workers=1, **changes) -> dict:
    settings = dict(n=N, classes="0,1", shard_size=SHARD_SIZE, seed=SEED, workers=workers, progress=False,
                    select="useful", select_candidates=PER_ROUND, classifier=JUDGE, data=DIGITS)
    return synthesize(SynthesisOptions(snapshot, str(out), **{**settings, **changes}))


@pytest.fixture(scope="module")
def from_noise(ray_local, snapshot, judge, tmp_path_factory):
    out = tmp_path_factory.mktemp("useful") / "out"
    return out, useful_job(snapshot, out)


def read(out):
    table = pq.read_table(sorted(out.glob("data/*.parquet")))
    dataset = SyntheticImages(out)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))]).numpy()
    return table, images


def test_least_sure_passing_takes_the_lowest_confidence_among_passing_candidates():
    passed = np.array([[True, False, True, True], [False, False, False, False], [False, True, False, True]])
    confidence = np.array([[0.9, 0.1, 0.6, 0.6], [0.2, 0.3, 0.4, 0.5], [0.2, 0.7, 0.1, 0.7]])
    accepted, column = least_sure_passing(passed, confidence)
    assert accepted.tolist() == [True, False, True]
    assert column[[0, 2]].tolist() == [2, 1]  # 0.6 over 0.9 (first of a tie); 0.7 though 0.1 failed


def test_each_class_radius_holds_the_spread_share_of_its_real_images(judge, spread):
    train = load_data(DIGITS)
    distance = np.linalg.norm(judge.embed(train.images) - spread.centroids[train.labels], axis=1)
    for label in range(10):
        inside = (distance[train.labels == label] <= spread.radii[label]).mean()
        assert SPREAD_PERCENTILE / 100 <= inside < 1.0


def test_each_image_is_the_least_sure_passing_candidate_of_its_first_round_with_any_or_its_likeliest(from_noise, judge, spread,
                                                                                     snapshot):
    out, manifest = from_noise
    assert verify(str(out)).ok and manifest["totals"]["images"] == N
    table, images = read(out)
    latent, labels = table.column("latent_index").to_numpy(), table.column("label").to_numpy()
    index = table.column("index").to_numpy()
    assert np.array_equal(index, np.arange(N)) and np.array_equal(latent % N, index)
    attempt = latent // N
    assert (attempt % PER_ROUND != 0).any(), "some image must keep another candidate than its round's first"
    passed, _ = spread.judge_candidates(judge, images, labels)
    assert np.array_equal(passed, table.column("useful").to_numpy() == 1) and passed.mean() > 0.8
    model = load_snapshot(snapshot).model
    rounds = MAX_ROUNDS
    tried = index[:, None] + np.arange(rounds * PER_ROUND)[None, :] * N  # (N, candidates)
    candidates = generate_uint8(model, SEED, torch.from_numpy(tried.ravel()),
                                torch.from_numpy(np.repeat(labels, tried.shape[1])), "cpu").numpy()
    ok, confidence = spread.judge_candidates(judge, candidates, np.repeat(labels, tried.shape[1]))
    ok, confidence = ok.reshape(N, -1), confidence.reshape(N, -1)
    assert np.array_equal(candidates.reshape(N, -1, *images.shape[1:])[np.arange(N), attempt], images)
    for row in np.flatnonzero(passed):
        kept_round = attempt[row] // PER_ROUND
        assert not ok[row, : kept_round * PER_ROUND].any()
        this_round = slice(kept_round * PER_ROUND, (kept_round + 1) * PER_ROUND)
        assert confidence[row, attempt[row]] == confidence[row, this_round][ok[row, this_round]].min()
    for row in np.flatnonzero(~passed):  # none of its rounds passed: its most class-like candidate, the first of a tie
        assert not ok[row].any() and attempt[row] == confidence[row].argmax()


def test_manifest_records_the_rule_and_acceptance(from_noise):
    out, manifest = from_noise
    record = FilterSettings.from_dict(manifest["filter"], "test")
    assert record.select == "useful" and record.candidates_per_round == PER_ROUND and record.min_confidence is None
    assert len(record.radii) == 10 and len(record.centroids[0]) == JUDGE.feature_dim
    acceptance = manifest["acceptance"]
    assert acceptance["accepted"] == N and acceptance["candidates"] % PER_ROUND == 0
    assert acceptance["candidates"] >= N * PER_ROUND
    useful = pq.read_table(sorted(out.glob("data/*.parquet"))).column("useful").to_numpy()
    assert acceptance["passed"] == useful.sum() and sum(c["passed"] for c in acceptance["per_class"]) == useful.sum()
    assert "least sure of 4 candidates" in describe_manifest(manifest, str(out))


def test_two_workers_write_the_same_bytes(from_noise, snapshot, tmp_path):
    _, manifest = from_noise
    other = useful_job(snapshot, tmp_path / "two", workers=2)
    assert [s["sha256"] for s in other["shards"]] == [s["sha256"] for s in manifest["shards"]]


def test_resume_refuses_another_round_size(from_noise, snapshot):
    out, _ = from_noise
    with pytest.raises(Exception, match="other filter"):
        useful_job(snapshot, out, select_candidates=2, resume=True)


def test_variants_keep_their_source_and_strength_and_record_the_variant_kept(ray_local, digits_cdm_snapshot, judge,
                                                                             spread, tmp_path):
    sources = f"{DIGITS}?limit_per_class=6"
    job = dict(n=None, variants_of=sources, per_image=2, strength=(0.5,), shard_size=50, seed=4, progress=False,
               select="useful", select_candidates=PER_ROUND, classifier=JUDGE, data=DIGITS)
    manifest = synthesize(SynthesisOptions(digits_cdm_snapshot, str(tmp_path / "one"), workers=1, **job))
    two = synthesize(SynthesisOptions(digits_cdm_snapshot, str(tmp_path / "two"), workers=2, **job))
    assert [s["sha256"] for s in two["shards"]] == [s["sha256"] for s in manifest["shards"]]
    table, images = read(tmp_path / "one")
    labels, variant = table.column("label").to_numpy(), table.column("variant").to_numpy()
    source_index = table.column("source_index").to_numpy()
    assert len(images) == 60 * 2 and sorted(zip(source_index, variant % 2)) == [(s, v) for s in range(60) for v in (0, 1)]
    assert (variant >= 2).any(), "some variant must be another candidate than the first"
    passed = spread.judge_candidates(judge, images, labels)[0]
    assert np.array_equal(passed, table.column("useful").to_numpy() == 1) and passed.mean() > 0.7
    real = load_data(sources)
    source_fails = ~spread.judge_candidates(judge, real.images[source_index], labels)[0]
    assert source_fails.any() and (variant[source_fails] < 2).all()  # kept their first candidate, no rounds
    model = load_snapshot(digits_cdm_snapshot).model
    again = variants_uint8(model, real.images[source_index], source_index, variant, labels, 0.5, 4).numpy()
    assert np.array_equal(again, images)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--select", "useful"], "--select useful: needs the real set its classifier learns"),
        (["--select", "useful", "--min-confidence", "0.5", "--data", DIGITS], "--select useful and --min-confidence"),
        (["--select", "best", "--data", DIGITS], "'best' is not 'useful'"),
        (["--select", "useful", "--select-candidates", "0", "--data", DIGITS], "0 is not in the range 1<=x<=64"),
    ],
)
def test_bad_selection_options_are_one_line_errors(snapshot, tmp_path, arguments, message):
    result = CliRunner().invoke(
        main, ["synthesize", "--model", snapshot, "--n", "10", "--out", str(tmp_path / "out"), *arguments]
    )
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_select_with_mix_classes_is_refused_in_one_line(digits_cdm_snapshot, tmp_path):
    result = CliRunner().invoke(main, [
        "synthesize", "--model", digits_cdm_snapshot, "--variants-of", DIGITS, "--mix-classes", "--select", "useful",
        "--out", str(tmp_path / "out"),
    ])
    assert result.exit_code != 0 and "--select useful and --mix-classes" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_a_manifest_of_a_confidence_filter_still_reads(from_noise):
    _, manifest = from_noise
    old = {key: manifest["filter"][key] for key in ("data", "classifier_key", "classifier_sha256", "classifier")}
    record = FilterSettings.from_dict({**old, "min_confidence": 0.9}, "an older manifest")
    assert record.select == "confident" and record.rule() == "own-class probability >= 0.9"
    with pytest.raises(Exception, match="expected the record of a --min-confidence or --select useful job"):
        FilterSettings.from_dict({**old, "min_confidence": None, "select": "useful"}, "a bad manifest")
    assert json.loads(json.dumps(manifest["filter"])) == manifest["filter"]


def test_the_judge_s_training_has_its_bar(snapshot, tmp_path, monkeypatch, capfd):
    from gen_aug.synthesis.filter import filter_settings

    monkeypatch.setenv("GENAUG_CACHE", str(tmp_path / "fresh-cache"))
    meta = load_snapshot(snapshot).meta
    filter_settings(DIGITS, None, "useful", PER_ROUND, JUDGE, meta)
    shown = capfd.readouterr().err.replace("\r", "\n")
    assert f"--select useful: its judge (cached after):   0%|          | 0/{JUDGE.steps}" in shown
    filter_settings(DIGITS, None, "useful", PER_ROUND, JUDGE, meta)  # from the cache: no training, no bar
    assert "its judge" not in capfd.readouterr().err
