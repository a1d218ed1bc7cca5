"""The shard reader: a torch Dataset over every format, hashes checked on read, manifest paths never followed.

Guards: gen_aug/output/reader.py, gen_aug/output/__init__.py, gen_aug/synthesis/reader.py
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gen_aug.checkpoint import load_snapshot
from gen_aug.data import LabelledImages
from gen_aug.errors import GenaugError
from gen_aug.output.manifest import MANIFEST
from gen_aug.output.plan import Plan
from gen_aug.evaluation.arms import mix_real_synthetic
from gen_aug.output.reader import SyntheticImages, load_synthetic
from gen_aug.sampling import generate_uint8
from gen_aug.output.formats import FORMATS
from gen_aug.synthesis.driver import synthesize
from gen_aug.synthesis.options import SynthesisOptions

pytestmark = pytest.mark.ray

JOB = {"n": 30, "shard_size": 8, "seed": 5}  # four shards, the last one short


@pytest.fixture(scope="module")
def outputs(ray_local, digits_snapshot, tmp_path_factory):
    folder = tmp_path_factory.mktemp("outputs")
    for image_format in FORMATS:
        synthesize(SynthesisOptions(digits_snapshot, str(folder / image_format), workers=1, format=image_format,
                                    progress=False, **JOB))
    return {image_format: folder / image_format for image_format in FORMATS}


def expected(digits_snapshot, out) -> tuple[np.ndarray, np.ndarray]:
    """The images drawn again from the snapshot, independently of any shard: (uint8 images, labels)."""
    plan = Plan.from_dict(json.loads((Path(out) / MANIFEST).read_text())["plan"])
    labels = plan.labels(0, plan.n)
    model = load_snapshot(digits_snapshot).model
    images = generate_uint8(model, plan.seed, torch.arange(plan.n), torch.from_numpy(labels), "cpu")
    return images.numpy(), labels


@pytest.mark.parametrize("image_format", FORMATS)
def test_every_format_reads_back_the_images_the_snapshot_draws(outputs, digits_snapshot, image_format):
    want_images, want_labels = expected(digits_snapshot, outputs[image_format])
    for path in (outputs[image_format], outputs[image_format] / MANIFEST):
        dataset = SyntheticImages(path)
        assert len(dataset) == 30
        images = torch.stack([dataset[i][0] for i in range(len(dataset))])
        assert images.dtype == torch.uint8 and images.shape == (30, 1, 8, 8)
        assert np.array_equal(images.numpy(), want_images)
        assert [dataset[i][1] for i in range(30)] == want_labels.tolist()
        assert dataset[-1][1] == want_labels[-1]
    batches = list(torch.utils.data.DataLoader(dataset, batch_size=7))
    assert [len(labels) for _, labels in batches] == [7, 7, 7, 7, 2]
    assert np.array_equal(torch.cat([images for images, _ in batches]).numpy(), want_images)
    with pytest.raises(IndexError):
        dataset[30]


def test_transform_and_the_real_class_order(outputs):
    names = SyntheticImages(outputs["parquet"]).class_names
    reordered = tuple(reversed(names))
    dataset = SyntheticImages(outputs["parquet"], transform=lambda image: image.float() / 255, class_names=reordered)
    plain = SyntheticImages(outputs["parquet"])
    for index in range(len(dataset)):
        image, label = dataset[index]
        assert image.dtype == torch.float32 and float(image.max()) <= 1.0
        assert reordered[label] == names[plain[index][1]]


def test_other_class_names_are_refused(outputs):
    with pytest.raises(GenaugError, match="expected the real data's classes cat, dog"):
        SyntheticImages(outputs["raw"], class_names=["cat", "dog"])


def test_load_synthetic_and_mixing_at_a_ratio(outputs):
    synthetic = load_synthetic(outputs["png"])
    manifest = json.loads((outputs["png"] / MANIFEST).read_text())
    assert synthetic.class_counts().tolist() == manifest["totals"]["class_counts"]
    assert synthetic.description == f"synthetic:{outputs['png']}"
    names = synthetic.class_names
    real = LabelledImages(np.zeros((20, 1, 8, 8), np.uint8), np.arange(20) % 10, names, "two of each class")
    mixed = mix_real_synthetic(real, load_synthetic(outputs["png"], real.class_names), 1.0)
    assert len(mixed.images) == 40 and mixed.class_counts().tolist() == [4] * 10
    assert np.array_equal(mixed.images[:20], real.images)


def corrupt_copy(outputs, image_format, tmp_path) -> Path:
    """A copy whose shard 1 holds other valid bytes: shard 2's file, or a PNG of shard 0."""
    out = tmp_path / image_format
    shutil.copytree(outputs[image_format], out)
    if image_format == "png":
        plan = Plan.from_dict(json.loads((out / MANIFEST).read_text())["plan"])
        victim = next(p for p in out.rglob("*.png") if plan.shard_size <= int(p.stem) < 2 * plan.shard_size)
        victim.write_bytes(next(out.rglob("0.png")).read_bytes())
    else:
        (out / "data/train-00001-of-00004.parquet").write_bytes((out / "data/train-00002-of-00004.parquet").read_bytes())
    return out


@pytest.mark.parametrize("image_format", FORMATS)
def test_a_shard_that_differs_from_its_record_is_refused(outputs, image_format, tmp_path):
    dataset = SyntheticImages(corrupt_copy(outputs, image_format, tmp_path))
    assert dataset[0][0].shape == (1, 8, 8)  # shard 0 is intact
    with pytest.raises(GenaugError, match="shard 1: sha256 .* differs from the manifest's"):
        dataset[8]
    with pytest.raises(GenaugError, match="shard 1"):
        load_synthetic(dataset.out)


@pytest.mark.parametrize("file", ["../outside.parquet", "/etc/passwd", "data/train-00002-of-00004.parquet"])
def test_manifest_paths_are_never_followed(outputs, tmp_path, file):
    out = tmp_path / "out"
    shutil.copytree(outputs["parquet"], out)
    (tmp_path / "outside.parquet").write_bytes((out / "data/train-00001-of-00004.parquet").read_bytes())
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["shards"][1]["file"] = file
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(GenaugError, match=f"shard 1 file '{file}' (escapes the output folder|is not this shard's file)"):
        SyntheticImages(out)


def test_incomplete_or_missing_manifests_are_refused(outputs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(outputs["raw"], out)
    manifest = json.loads((out / MANIFEST).read_text())
    del manifest["shards"][2]
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(GenaugError, match="no record of shard 2"):
        SyntheticImages(out)
    with pytest.raises(GenaugError, match="no _manifest.json"):
        SyntheticImages(tmp_path / "nothing-here")


def test_the_reader_is_found_at_the_package_face_and_at_its_old_home():
    import gen_aug.output
    import gen_aug.synthesis.reader
    from gen_aug.output import SyntheticImages as face_class, load_synthetic as face_loader, verify
    from gen_aug.output.reader import SyntheticImages, load_synthetic
    from gen_aug.output.verification import verify as verify_function

    assert face_class is SyntheticImages is gen_aug.synthesis.reader.SyntheticImages
    assert face_loader is load_synthetic is gen_aug.synthesis.reader.load_synthetic
    assert verify is verify_function  # the function, not a module of that name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        gen_aug.output.nothing
