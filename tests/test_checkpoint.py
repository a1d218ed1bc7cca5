"""Snapshots: round trip gives identical samples; every flawed file is a one-line error; nothing is unpickled.

Guards: gen_aug/checkpoint.py, gen_aug/atomic.py
"""

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from gen_aug.checkpoint import load_snapshot, save_snapshot
from gen_aug.errors import GenaugError
from gen_aug.models import MODELS, build_model

META = {"class_names": ["a", "b", "c"], "data": {"description": "builtin:x", "fingerprint": "f" * 64}, "steps": 5}


def sample(model, labels, generator):
    """Images of `labels` from latents drawn from `generator`."""
    return model.generate(torch.randn(len(labels), model.z_dim, generator=generator), labels)


def tiny(family):
    # Frozen, as every sampler (synthesis, previews, a loaded snapshot) holds it: PyTorch's CPU linear
    # layers round 3-d inputs (the U-Net's attention) a little differently while weights require grad.
    model = build_model(family, dict(resolution=8, channels=1, num_classes=3, z_dim=8, width=4, steps=3)
                        if family == "cdm" else dict(resolution=8, channels=1, num_classes=3, z_dim=8, width=4))
    return model.eval().requires_grad_(False)


@pytest.mark.parametrize("family", sorted(MODELS))
def test_round_trip_gives_identical_samples(tmp_path, family):
    model = tiny(family)
    save_snapshot(tmp_path / "model.safetensors", model, META)
    snapshot = load_snapshot(tmp_path / "model.safetensors")
    labels = torch.tensor([0, 1, 2, 1])
    assert torch.equal(
        sample(snapshot.model, labels, torch.Generator().manual_seed(3)),
        sample(model, labels, torch.Generator().manual_seed(3)),
    )
    assert snapshot.meta["family"] == family and snapshot.meta["class_names"] == ["a", "b", "c"]
    assert snapshot.meta["resolution"] == 8 and snapshot.meta["channels"] == 1 and snapshot.meta["steps"] == 5
    assert snapshot.meta["data"]["fingerprint"] == "f" * 64 and snapshot.meta["format_version"] == 1
    assert not snapshot.model.training and len(snapshot.sha256) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temporary left behind


def test_snapshot_holds_only_the_sampling_network(tmp_path):
    model = tiny("cgan")
    save_snapshot(tmp_path / "model.safetensors", model, META)
    header = json.loads((tmp_path / "model.safetensors").read_bytes()[8:][: struct.unpack("<Q", (tmp_path / "model.safetensors").read_bytes()[:8])[0]])
    assert {name for name in header if name != "__metadata__"} == set(model.state_dict())


def _write(path, payload):
    path.write_bytes(payload)
    return path


def _write_with_meta(tmp_path, family, change):
    model = tiny(family)
    save_snapshot(tmp_path / "good.safetensors", model, META)
    with open(tmp_path / "good.safetensors", "rb") as stream:
        header_bytes = struct.unpack("<Q", stream.read(8))[0]
        meta = json.loads(json.loads(stream.read(header_bytes))["__metadata__"]["genaug"])
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, tmp_path / "bad.safetensors", metadata={"genaug": json.dumps(meta | change)})
    return tmp_path / "bad.safetensors"


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p / "absent.safetensors", r"no such file"),
        (lambda p: _write(p / "x.safetensors", b"hello, not weights"), r"not a safetensors"),
        (lambda p: _write(p / "x.safetensors", b""), r"not a safetensors file \(only 0"),
        (lambda p: _write_with_meta(p, "cgan", {"format_version": 2}), r"format version 2 .*expected version 1"),
        (lambda p: _write_with_meta(p, "cgan", {"family": "stylegan"}), r"family 'stylegan' \(expected one of cdm, cgan, cvae\)"),
        (lambda p: _write_with_meta(p, "cvae", {"family": "cgan", "config": {"resolution": 8, "channels": 1, "num_classes": 3, "z_dim": 9, "width": 4}}), r"weights do not fit a cgan model"),
        (lambda p: _write_with_meta(p, "cgan", {"config": {"resolution": 512, "channels": 1, "num_classes": 3}}), r"resolution = 512"),
    ],
)
def test_flawed_snapshots_are_errors_naming_the_file(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(GenaugError, match=message) as error:
        load_snapshot(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_truncated_snapshot_is_an_error(tmp_path):
    save_snapshot(tmp_path / "model.safetensors", tiny("cgan"), META)
    payload = (tmp_path / "model.safetensors").read_bytes()
    for keep_bytes in (4, 100, len(payload) - 10):
        (tmp_path / "cut.safetensors").write_bytes(payload[:keep_bytes])
        with pytest.raises(GenaugError, match=r"cut.safetensors: not a"):
            load_snapshot(tmp_path / "cut.safetensors")


def test_safetensors_without_genaug_metadata_is_refused(tmp_path):
    save_file({"w": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(GenaugError, match=r"not a genaug snapshot"):
        load_snapshot(tmp_path / "other.safetensors")
