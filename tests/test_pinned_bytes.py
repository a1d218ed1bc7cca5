"""Shard bytes pinned: the same small jobs must keep writing exactly these bytes, whatever the code's layout.

The model's weights come from a formula rather than torch's initialisers, so only the generator's
arithmetic, the latents, the encoders and the file writers decide the hashes. They are those of the
library versions below; on other versions PNG, zstd or float rounding may legitimately differ.

Guards: gen_aug/sampling.py, gen_aug/output/encoding.py, gen_aug/output/formats.py
"""

import hashlib
import json
from importlib import metadata
from pathlib import Path

import pytest
import torch

from gen_aug.checkpoint import save_snapshot
from gen_aug.models import build_model
from gen_aug.synthesis.driver import synthesize
from gen_aug.synthesis.options import SynthesisOptions

pytestmark = pytest.mark.ray

PINNED_VERSIONS = {"torch": "2.14.1", "pyarrow": "26.0.1", "pillow": "13.0.0"}
# sha256 over the manifest's shard hashes, in shard order, of each format's job below.
PINNED_SHARDS_SHA256 = {
    "parquet": "569ce147a5ce7f124b413593e417a0ab758f1b102aa9880460df389fcf780528",
    "png": "9e9d721ea68b9b908e3460f0f3e2960f341c5080c56069bdad3ccc1e36c0be9c",
    "raw": "48cb0c42635d8f090fa9d2a674db12109ce26630e3c4fb7b8fcb5881ccb9b347",
}


def _versions() -> dict:
    return {package: metadata.version(package) for package in PINNED_VERSIONS}


@pytest.fixture(scope="module")
def formula_snapshot(tmp_path_factory) -> str:
    model = build_model("cgan", {"resolution": 8, "channels": 1, "num_classes": 3, "z_dim": 8, "width": 4})
    with torch.no_grad():
        for offset, (_, tensor) in enumerate(sorted(model.state_dict().items())):
            if tensor.dtype.is_floating_point:
                values = torch.arange(tensor.numel(), dtype=torch.float64) * 0.7071 + offset
                tensor.copy_((0.3 * torch.sin(values)).reshape(tensor.shape).to(tensor.dtype))
    path = tmp_path_factory.mktemp("pinned") / "model.safetensors"
    save_snapshot(path, model, {"class_names": ["cat", "dog", "owl"]})
    return str(path)


@pytest.mark.skipif(_versions() != PINNED_VERSIONS, reason=f"hashes pinned for {PINNED_VERSIONS}")
@pytest.mark.parametrize("image_format", ["parquet", "png", "raw"])
def test_shard_bytes_are_pinned(ray_local, formula_snapshot, tmp_path, image_format):
    out = tmp_path / image_format
    synthesize(SynthesisOptions(formula_snapshot, str(out), n=60, shard_size=25, seed=5, workers=2,
                                format=image_format, progress=False))
    shards = json.loads((Path(out) / "_manifest.json").read_text())["shards"]
    combined = hashlib.sha256("".join(s["sha256"] for s in sorted(shards, key=lambda s: s["shard_idx"])).encode())
    assert combined.hexdigest() == PINNED_SHARDS_SHA256[image_format]
