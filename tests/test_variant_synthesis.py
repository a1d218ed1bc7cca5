"""`genaug synthesize --variants-of`: variants of real images through Ray, each row naming its source, on a tiny cdm.

Guards: gen_aug/synthesis/variant_job.py, gen_aug/output/settings.py, gen_aug/output/reader.py,
    gen_aug/synthesis/options.py
"""

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from gen_aug.cli import main

from gen_aug.data import load_data
from gen_aug.errors import GenaugError
from gen_aug.synthesis.driver import synthesize
from gen_aug.output.encoding import decode_png
from gen_aug.output.manifest import MANIFEST
from gen_aug.synthesis.options import SynthesisOptions
from gen_aug.output.plan import Plan
from gen_aug.output.reader import SyntheticImages
from gen_aug.output.settings import VARIANT_COLUMNS, VariantSettings
from gen_aug.synthesis.variant_job import VariantTable, variant_rows
from gen_aug.output.verification import verify

DIGITS = "builtin:digits"  # its train split: 1,442 8x8 images of 10 classes


def job(snapshot, out, **changes) -> SynthesisOptions:
    settings = dict(n=None, variants_of=DIGITS, per_image=1, strength=(0.0, 0.5), shard_size=1000, seed=4,
                    workers=1, progress=False)
    return SynthesisOptions(snapshot, str(out), **{**settings, **changes})


def table(out: Path):
    return pq.read_table(sorted(str(p) for p in out.glob("data/*.parquet")))


def shard_hashes(out: Path) -> list[str]:
    return [shard["sha256"] for shard in json.loads((out / MANIFEST).read_text())["shards"]]


@pytest.fixture(scope="module")
def one_worker_run(ray_local, digits_cdm_snapshot, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("variants") / "one"
    synthesize(job(digits_cdm_snapshot, out, card=True))
    return out


def test_every_source_gets_each_variant_at_each_strength_once_under_its_own_class():
    labels = np.array([2, 0, 2, 1, 2, 0])  # classes of 2, 1 and 3 sources, in no order
    variants = VariantSettings("x", "train", "0" * 64, (2, 1, 3), per_image=3, strengths=(0.25, 0.75))
    plan = Plan(seed=0, shard_size=7, class_names=("a", "b", "c"), class_counts=(12, 6, 18))
    rows = variant_rows(plan, variants, labels, 0, plan.n)
    made = sorted(zip(rows["source_index"], rows["variant"], rows["strength"]))
    assert made == sorted((s, v, t) for s in range(6) for v in range(3) for t in (0.25, 0.75))
    assert (rows["source_label"] == plan.labels(0, plan.n)).all() and (rows["source_label"] == labels[rows["source_index"]]).all()
    pieces = [variant_rows(plan, variants, labels, s.start, s.stop) for s in plan.shards()]
    assert (np.concatenate([p["source_index"] for p in pieces]) == rows["source_index"]).all()  # a row is its index alone


def test_mixed_variants_go_to_every_other_class_in_turn_each_row_once():
    labels = np.array([2, 0, 2, 1, 2, 0])
    variants = VariantSettings("x", "train", "0" * 64, (2, 1, 3), per_image=4, strengths=(0.5,), mix_classes=True)
    counts = tuple(int(c) for c in VariantTable.of(variants, labels).counts())
    assert sum(counts) == 24
    plan = Plan(seed=0, shard_size=5, class_names=("a", "b", "c"), class_counts=counts)
    rows = variant_rows(plan, variants, labels, 0, plan.n)
    rendered = plan.labels(0, plan.n)
    assert sorted(zip(rows["source_index"], rows["variant"])) == [(s, v) for s in range(6) for v in range(4)]
    assert (rows["source_label"] == labels[rows["source_index"]]).all() and (rendered != rows["source_label"]).all()
    for source in range(6):  # 4 variants over the 2 other classes: each twice
        mine = rendered[rows["source_index"] == source]
        assert sorted(np.bincount(mine, minlength=3)) == [0, 2, 2], (source, mine)
    sources = np.array([2, 1, 3])  # class j gets half of each other class's 4 variants per source
    assert counts == tuple(int(4 // 2 * (sources.sum() - sources[j])) for j in range(3)) == (8, 10, 6)


def test_mix_pairs_render_each_class_under_its_targets_in_turn_and_leave_classes_without_one_out():
    labels = np.array([2, 0, 2, 1, 2, 0])
    pairs = ((0, 1), (0, 2), (2, 0))  # class 1 has no target: its source is not varied
    variants = VariantSettings("x", "train", "0" * 64, (2, 1, 3), per_image=2, strengths=(0.5,), mix_classes=True,
                               mix_pairs=pairs)
    counts = tuple(int(c) for c in VariantTable.of(variants, labels).counts())
    assert counts == (3 * 2, 2, 2)  # class 0 gets both variants of the 3 class-2 sources; 1 and 2 half of class 0's
    plan = Plan(seed=0, shard_size=3, class_names=("a", "b", "c"), class_counts=counts)
    rows = variant_rows(plan, variants, labels, 0, plan.n)
    rendered = plan.labels(0, plan.n)
    assert sorted(zip(rows["source_index"], rows["variant"])) == [(s, v) for s in (0, 1, 2, 4, 5) for v in range(2)]
    assert set(zip(rows["source_label"], rendered)) == {(0, 1), (0, 2), (2, 0)}
    for source in (1, 5):  # a class-0 source's 2 variants go to classes 1 and 2, one each
        assert sorted(rendered[rows["source_index"] == source]) == [1, 2]
    again = VariantSettings.from_dict(json.loads(json.dumps(variants.to_dict())), "test")
    assert again == variants
    assert "mix_pairs" not in dataclasses.replace(variants, mix_pairs=()).to_dict()  # older records stay as they were


@pytest.mark.parametrize("pairs, message", [
    ("1>1", "renders a class under itself"), ("1-2", "is not SOURCE>TARGET"), ("1>2,1>2", "is given twice"),
    ("1>eleven", "unknown class 'eleven'"),
])
def test_bad_mix_pairs_are_one_line_errors(digits_cdm_snapshot, tmp_path, pairs, message):
    result = CliRunner().invoke(main, ["synthesize", "--model", digits_cdm_snapshot, "--variants-of", DIGITS,
                                       "--mix-classes", "--mix-pairs", pairs, "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_mix_pairs_need_mix_classes(digits_cdm_snapshot, tmp_path):
    result = CliRunner().invoke(main, ["synthesize", "--model", digits_cdm_snapshot, "--variants-of", DIGITS,
                                       "--mix-pairs", "1>2", "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "without --mix-classes" in result.output and "Traceback" not in result.output


def test_a_mix_pairs_job_writes_only_its_pairs(ray_local, digits_cdm_snapshot, tmp_path):
    sources = f"{DIGITS}?limit_per_class=3"
    synthesize(job(digits_cdm_snapshot, tmp_path / "out", variants_of=sources, per_image=2, strength=(0.5,),
                   mix_classes=True, mix_pairs="3>8,8>3,8>5"))
    found = table(tmp_path / "out")
    pairs = set(zip(found.column("source_label").to_pylist(), found.column("label").to_pylist()))
    assert pairs == {(3, 8), (8, 3), (8, 5)} and found.num_rows == 2 * 3 * 2
    assert verify(str(tmp_path / "out")).ok


def test_a_cvae_snapshot_makes_variants_through_ray_as_a_cdm_does(ray_local, tmp_path):
    from gen_aug.checkpoint import save_snapshot
    from gen_aug.models import build_model
    from gen_aug.variants import variants_uint8

    sources = load_data(f"{DIGITS}?limit_per_class=2")
    snapshot = tmp_path / "cvae.safetensors"
    model = build_model("cvae", {"resolution": 8, "channels": 1, "num_classes": 10, "z_dim": 8, "width": 4})
    save_snapshot(snapshot, model.eval(), {"class_names": list(sources.class_names)})
    synthesize(job(str(snapshot), tmp_path / "out", variants_of=f"{DIGITS}?limit_per_class=2", per_image=2))
    found = table(tmp_path / "out")
    assert found.num_rows == 20 * 2 * 2 and verify(str(tmp_path / "out")).ok
    source, variant = found.column("source_index").to_numpy(), found.column("variant").to_numpy()
    strength, label = found.column("strength").to_numpy(), found.column("label").to_numpy()
    images = np.stack([decode_png(item["bytes"]) for item in found.column("image").to_pylist()])
    assert (images[strength == 0] == sources.images[source[strength == 0]]).all()
    half = strength == 0.5
    again = variants_uint8(model, sources.images[source[half]], source[half], variant[half], label[half], 0.5, 4)
    assert np.array_equal(again.numpy(), images[half])


def test_rows_record_their_source_and_strength_0_is_the_source_image(one_worker_run):
    real = load_data(DIGITS)
    found = table(one_worker_run)
    assert found.num_rows == 2 * len(real.labels) and set(found.column("source_split").to_pylist()) == {"train"}
    source = found.column("source_index").to_numpy()
    label, source_label = found.column("label").to_numpy(), found.column("source_label").to_numpy()
    strength = found.column("strength").to_numpy()
    assert (source_label == real.labels[source]).all() and (label == source_label).all()
    assert sorted(zip(source, strength)) == sorted((s, t) for s in range(len(real.labels)) for t in (0.0, 0.5))
    images = np.stack([decode_png(item["bytes"]) for item in found.column("image").to_pylist()])
    untouched = strength == 0.0
    assert (images[untouched] == real.images[source[untouched]]).all()
    moved = np.abs(images[~untouched].astype(int) - real.images[source[~untouched]]).mean()
    assert moved > 1, moved  # strength 0.5 ran half the sampler's path: the untrained model changes the pixels
    manifest = json.loads((one_worker_run / MANIFEST).read_text())
    assert manifest["variants"]["data_sha256"] == real.fingerprint and manifest["variants"]["strengths"] == [0.0, 0.5]
    card = (one_worker_run / "README.md").read_text()
    assert f"variant of a real image of {DIGITS}?split=train (sha256 `{real.fingerprint[:16]}`)" in card, card


def test_two_workers_and_a_resume_write_the_same_bytes_as_one(one_worker_run, digits_cdm_snapshot, tmp_path):
    two = tmp_path / "two"  # no card: a card changes no shard
    synthesize(job(digits_cdm_snapshot, two, workers=2))
    assert shard_hashes(two) == shard_hashes(one_worker_run)
    first = sorted(two.glob("data/*.parquet"))[0]
    first.unlink()  # lost: --resume writes it again and keeps the others
    resumed = synthesize(job(digits_cdm_snapshot, two, resume=True))
    assert resumed["images_written"] == 1000 and shard_hashes(two) == shard_hashes(one_worker_run)
    assert verify(str(two)).ok


def digit_folder(folder: Path) -> str:
    """One 8x8 image of each digit class, as a folder spec."""
    for digit in range(10):
        (folder / str(digit)).mkdir(parents=True)
        Image.fromarray(np.full((8, 8), 20 * digit, np.uint8)).save(folder / str(digit) / "a.png")
    return f"folder:{folder}"


def files_below(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_a_resume_against_changed_source_images_is_refused(ray_local, digits_cdm_snapshot, tmp_path):
    spec, out = digit_folder(tmp_path / "set"), tmp_path / "out"
    synthesize(job(digits_cdm_snapshot, out, variants_of=spec, per_image=2, strength=(0.5,)))
    before = files_below(out)
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "set" / "3" / "a.png")  # one source changes
    with pytest.raises(GenaugError) as error:
        synthesize(job(digits_cdm_snapshot, out, variants_of=spec, per_image=2, strength=(0.5,), resume=True))
    assert str(error.value).startswith(f"--resume {str(out)!r}: the job there had other variants"), error.value
    assert files_below(out) == before  # its shards are kept for a resume with the sources it had


def test_huggingface_datasets_reads_the_provenance_columns_with_their_types(one_worker_run, tmp_path):
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset(str(one_worker_run), cache_dir=str(tmp_path))["train"]
    features = loaded.features
    assert features["label"].names == list(load_data(DIGITS).class_names)
    assert {name: features[name].dtype for name in VARIANT_COLUMNS} == VARIANT_COLUMNS  # the card's and the files'
    assert list(features)[-len(VARIANT_COLUMNS):] == list(VARIANT_COLUMNS)
    assert loaded[0]["image"].size == (8, 8) and loaded[0]["source_split"] == "train"


def test_png_and_parquet_outputs_give_the_reader_the_same_provenance(ray_local, digits_cdm_snapshot, tmp_path):
    columns = {}
    for image_format in ("png", "parquet"):
        out = tmp_path / image_format
        synthesize(job(digits_cdm_snapshot, out, variants_of=f"{DIGITS}?limit_per_class=3", per_image=2,
                       strength=(0.5,), format=image_format))
        columns[image_format] = SyntheticImages(str(out)).columns(tuple(VARIANT_COLUMNS))
    assert len(columns["png"]["source_index"]) == 60 and set(columns["png"]["variant"].tolist()) == {0, 1}
    for name in VARIANT_COLUMNS:
        assert columns["png"][name].tolist() == columns["parquet"][name].tolist(), name
    with pytest.raises(GenaugError, match="no column 'latent_index' \\(expected one of this job's: source_split"):
        SyntheticImages(str(tmp_path / "png")).columns(("latent_index",))
