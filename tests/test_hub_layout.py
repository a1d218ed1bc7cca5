"""An output is a Hugging Face dataset repository: every usual reader opens it with no options, and old outputs still work.

Parquet shards lie under data/ with the Hub's names and the manifest at the root as _manifest.json,
a name directory readers skip; `--card` adds a README.md dataset card for the Hub.

Guards: gen_aug/output/card.py, gen_aug/output/formats.py, gen_aug/output/manifest.py,
    gen_aug/output/ownership.py, gen_aug/output/reader.py, gen_aug/output/verification.py
"""

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from gen_aug.output.card import CARD, MARKER
from gen_aug.synthesis.driver import synthesize
from gen_aug.output.manifest import LEGACY_MANIFEST, MANIFEST
from gen_aug.synthesis.options import SynthesisOptions
from gen_aug.output.reader import load_synthetic
from gen_aug.output.verification import verify

JOB = {"n": 30, "shard_size": 10, "seed": 3, "workers": 1, "progress": False}
DIGITS = [str(d) for d in range(10)]

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def outputs(ray_local, digits_snapshot, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub")
    for image_format in ("parquet", "raw", "png"):
        synthesize(SynthesisOptions(digits_snapshot, str(folder / image_format), format=image_format, **JOB))
        synthesize(SynthesisOptions(digits_snapshot, str(folder / f"{image_format}-card"), format=image_format,
                                    card=True, **JOB))
    return folder


def card_header(out) -> dict:
    text = (out / CARD).read_text()
    assert text.startswith("---\n") and MARKER in text
    return yaml.safe_load(text.split("---\n")[1])


def files(out) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def test_parquet_shards_have_the_hub_names_and_the_card_comes_when_asked(outputs):
    shards = ["data/train-00000-of-00003.parquet", "data/train-00001-of-00003.parquet",
              "data/train-00002-of-00003.parquet"]
    assert files(outputs / "parquet") == [MANIFEST, *shards]
    out = outputs / "parquet-card"
    assert files(out) == [CARD, MANIFEST, *shards]
    assert (out / MANIFEST).read_bytes() != b"" and verify(str(outputs / "parquet")).ok
    header = card_header(out)
    assert header["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    label = next(f for f in header["dataset_info"]["features"] if f["name"] == "label")
    assert label["dtype"]["class_label"]["names"] == {str(i): name for i, name in enumerate(DIGITS)}
    assert header["dataset_info"]["splits"][0]["num_examples"] == 30
    assert "genaug verify" in (out / CARD).read_text() and verify(str(out)).ok


@pytest.mark.parametrize("folder", ["parquet", "raw", "parquet/data", "raw/data", "parquet-card/data"])
def test_pandas_and_pyarrow_read_the_folder_with_no_options(outputs, folder):
    frame = pd.read_parquet(outputs / folder)
    table = pq.read_table(outputs / folder)
    assert len(frame) == table.num_rows == 30
    assert sorted(frame["index"]) == list(range(30)) and set(frame["class_name"]) <= set(DIGITS)


@pytest.mark.parametrize("image_format", ["parquet", "raw", "parquet-card"])
def test_huggingface_datasets_opens_the_folder_itself_and_as_parquet(outputs, image_format, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = str(outputs / image_format)
    for loaded in (datasets.load_dataset(out, cache_dir=str(tmp_path / "a")),
                   datasets.load_dataset("parquet", data_dir=out, cache_dir=str(tmp_path / "b"))):
        train = loaded["train"]
        assert list(loaded) == ["train"] and len(train) == 30
        assert sorted(train["index"]) == list(range(30))
        if image_format != "raw":  # the ClassLabel names come from the shards' schema, or the card's header
            assert train.features["label"].names == DIGITS
            assert np.asarray(train[0]["image"]).shape == (8, 8)


@pytest.mark.parametrize("image_format", ["parquet", "raw", "parquet-card"])
def test_ray_data_reads_the_folder_with_no_options(outputs, image_format):
    import ray

    dataset = ray.data.read_parquet(str(outputs / image_format))
    assert dataset.count() == 30
    assert sorted(row["index"] for row in dataset.select_columns(["index"]).take_all()) == list(range(30))


def test_imagefolder_and_datasets_read_the_png_output(outputs, tmp_path):
    datasets = pytest.importorskip("datasets")
    torchvision = pytest.importorskip("torchvision")
    for out in (outputs / "png", outputs / "png-card"):
        folder = torchvision.datasets.ImageFolder(str(out))
        assert len(folder) == 30 and set(folder.classes) <= set(DIGITS)
        loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / out.name))["train"]
        assert len(loaded) == 30
    assert card_header(outputs / "png-card") == {"tags": ["synthetic", "genaug"]}


def flat_copy(out, tmp_path):
    """The output as genaug wrote it before the Hub layout: shard-00000.parquet and manifest.json at the root."""
    old = tmp_path / "old"
    shutil.copytree(out, old)
    manifest = json.loads((old / MANIFEST).read_text())
    for record in manifest["shards"]:
        (old / record["file"]).rename(old / f"shard-{record['shard_idx']:05d}.parquet")
        record["file"] = f"shard-{record['shard_idx']:05d}.parquet"
    del manifest["plan"]["layout"]
    (old / LEGACY_MANIFEST).write_text(json.dumps(manifest))
    (old / MANIFEST).unlink()
    (old / "data").rmdir()
    return old


def legacy_hub_copy(out, tmp_path):
    """The output as genaug wrote it before the manifest's name began with '_': manifest.json and a card always."""
    old = tmp_path / "legacy-hub"
    shutil.copytree(out, old)
    (old / MANIFEST).rename(old / LEGACY_MANIFEST)
    card = (old / CARD).read_text()
    (old / CARD).write_text(card.replace(MARKER, MARKER.replace("_manifest", "manifest")))
    return old


def test_an_output_with_the_former_manifest_name_verifies_reads_and_resumes(outputs, digits_snapshot, tmp_path):
    new = outputs / "parquet"
    old = legacy_hub_copy(outputs / "parquet-card", tmp_path)
    report = verify(str(old))
    assert report.ok and report.unlisted == []  # the former card is still genaug's, not a stray file
    assert np.array_equal(load_synthetic(str(old)).images, load_synthetic(str(new)).images)
    assert np.array_equal(load_synthetic(str(old / LEGACY_MANIFEST)).labels, load_synthetic(str(new)).labels)
    (old / "data/train-00001-of-00003.parquet").unlink()
    manifest = synthesize(SynthesisOptions(digits_snapshot, str(old), resume=True, **JOB))
    assert manifest["images_resumed"] == 20
    # Resumed, it has the current records: one manifest, under the current name; genaug's former card is gone.
    assert files(old) == files(new) and verify(str(old)).ok


def test_an_output_of_the_flat_layout_verifies_reads_and_resumes_as_it_is(outputs, digits_snapshot, tmp_path):
    new = outputs / "parquet"
    old = flat_copy(new, tmp_path)
    assert verify(str(old)).ok
    images, labels = load_synthetic(str(old), class_names=DIGITS).images, load_synthetic(str(new)).labels
    assert np.array_equal(images, load_synthetic(str(new)).images) and np.array_equal(
        load_synthetic(str(old)).labels, labels)
    (old / "shard-00001.parquet").unlink()
    manifest = synthesize(SynthesisOptions(digits_snapshot, str(old), resume=True, **JOB))
    assert manifest["images_resumed"] == 20 and manifest["plan"]["layout"] == "flat"
    assert (old / "shard-00001.parquet").read_bytes() == (new / "data/train-00001-of-00003.parquet").read_bytes()
    assert not (old / "data").exists() and verify(str(old)).ok
    assert not (old / LEGACY_MANIFEST).exists() and (old / MANIFEST).exists()
    synthesize(SynthesisOptions(digits_snapshot, str(old), resume=True, card=True, **JOB))
    assert card_header(old)["configs"][0]["data_files"][0]["path"] == "shard-*.parquet"


def test_a_readme_of_the_users_is_never_taken_for_the_card(outputs, digits_snapshot, tmp_path):
    out = tmp_path / "mine"
    shutil.copytree(outputs / "parquet-card", out)
    (out / CARD).write_text("# my project\n")
    assert verify(str(out)).unlisted == [CARD]
    (out / MANIFEST).write_text("{damaged")  # no records: genaug cannot tell its files from the user's, so it refuses
    from click.testing import CliRunner

    from gen_aug.cli import main

    result = CliRunner().invoke(main, ["synthesize", "--model", digits_snapshot, "--out", str(out), "--n", "30",
                                       "--shard-size", "10", "--workers", "1", "--overwrite"])
    assert result.exit_code == 1 and "its records are unreadable" in result.output.splitlines()[-1]
    assert (out / CARD).read_text() == "# my project\n"


def test_a_users_readme_in_an_output_is_never_written_over(outputs, digits_snapshot, tmp_path):
    out = tmp_path / "mine"
    shutil.copytree(outputs / "parquet-card", out)
    (out / CARD).write_text("# my project\n")
    manifest = synthesize(SynthesisOptions(digits_snapshot, str(out), overwrite=True, card=True, **JOB))
    assert manifest["totals"]["images"] == 30 and (out / CARD).read_text() == "# my project\n"
    assert verify(str(out)).unlisted == [CARD]


@pytest.mark.parametrize("name", ["a\x7fb", "\x85z", "x: y", 'say "hi"', "- item", "#hash", "line\u2028sep", "é|ü"])
def test_the_card_header_keeps_any_class_name(name, monkeypatch):
    from gen_aug.output.card import dataset_card
    from gen_aug.output.plan import make_plan
    from gen_aug.output.settings import JobSettings

    plan = make_plan((name, "other"), n=4, shard_size=4)
    settings = JobSettings(plan, "parquet", "0" * 64, "cpu", 256)
    manifest = {"totals": {"images": 4, "bytes": 100, "shards": 1, "class_counts": [2, 2]},
                "snapshot": {"path": "/m.safetensors", "sha256": "0" * 64, "meta": {}}}
    monkeypatch.setattr("sys.argv", ["/usr/bin/genaug", "synthesize", "--out", "s3://KEY:SECRET@bucket/x"])
    card = dataset_card(settings, manifest)
    names = next(f for f in yaml.safe_load(card.split("---\n")[1])["dataset_info"]["features"] if f["name"] == "label")
    assert names["dtype"]["class_label"]["names"] == {"0": name, "1": "other"}
    assert "SECRET" not in card and "s3://bucket/x" in card
    table_rows = [line for line in card.splitlines() if line.endswith(" | 0 | 2 |")]
    assert len(table_rows) == 1 and table_rows[0].count(" | ") == 2  # one row, three cells, whatever the name
