"""Variants of real images on a tiny real cdm and cvae: deterministic, batch-invariant, strength 0 the source, 1 from
noise; a cvae snapshot keeps its encoder, and one written without it is refused in one line.

Guards: gen_aug/variants.py, gen_aug/models/cdm.py, gen_aug/models/cvae.py, gen_aug/checkpoint.py, gen_aug/images.py
"""

import json
import math

import numpy as np
import pytest
import torch

from gen_aug.checkpoint import META_KEY, load_snapshot, read_snapshot_meta, save_snapshot
from gen_aug.errors import GenaugError
from gen_aug.images import to_uint8
from gen_aug.models import build_model
from gen_aug.sampling import GENERATION_CHUNK, generate_uint8, latents
from gen_aug.variants import parse_strengths, variant_seed, variants_uint8

SEED = 5
ROWS = GENERATION_CHUNK["cpu"] + 44  # two chunks, the second padded


TINY = {"cdm": {"resolution": 8, "channels": 1, "num_classes": 3, "width": 4, "steps": 4},
        "cvae": {"resolution": 8, "channels": 1, "num_classes": 3, "z_dim": 8, "width": 4}}


@pytest.fixture(scope="module")
def cdm():
    torch.manual_seed(0)
    return build_model("cdm", TINY["cdm"]).eval()


@pytest.fixture(scope="module", params=["cdm", "cvae"])
def model(request):
    """Each family that can vary a real image."""
    torch.manual_seed(0)
    return build_model(request.param, TINY[request.param]).eval()


@pytest.fixture(scope="module")
def rows():
    """ROWS (source image, its index in a split of 100, variant number, class to render under)."""
    rng = np.random.default_rng(1)
    real = rng.integers(0, 256, size=(100, 1, 8, 8), dtype=np.uint8)
    source_indices = rng.integers(0, 100, size=ROWS)
    return real[source_indices], source_indices, rng.integers(0, 4, size=ROWS), rng.integers(0, 3, size=ROWS)


def vary(cdm, rows, strength, part=slice(None)):
    sources, indices, variants, labels = rows
    return variants_uint8(cdm, sources[part], indices[part], variants[part], labels[part], strength, SEED)


def test_strength_0_returns_the_source_images_byte_for_byte(model, rows):
    assert torch.equal(vary(model, rows, 0.0), torch.from_numpy(rows[0]))


def test_strength_1_is_sampling_from_noise_with_the_variant_s_latent(model, rows):
    sources, indices, variants, labels = rows
    varied = vary(model, rows, 1.0)
    for variant in np.unique(variants):  # from-noise images of variant v: latents (variant_seed(seed, v), index)
        mine = variants == variant
        drawn = generate_uint8(model, variant_seed(SEED, int(variant)), torch.from_numpy(indices[mine]),
                               torch.from_numpy(labels[mine]), "cpu")
        assert torch.equal(varied[torch.from_numpy(mine)], drawn)


@pytest.mark.parametrize("strength", [0.5, 0.75])
def test_a_variant_is_the_same_whatever_rows_it_is_made_with(model, rows, strength):
    whole = vary(model, rows, strength)
    parts = torch.cat([vary(model, rows, strength, slice(0, 100)), vary(model, rows, strength, slice(100, None))])
    order = np.random.default_rng(2).permutation(ROWS)
    shuffled = variants_uint8(model, *(column[order] for column in rows[:3]), rows[3][order], strength, SEED)
    assert torch.equal(whole, parts)
    assert torch.equal(whole[torch.from_numpy(order)], shuffled)


def test_a_low_strength_keeps_the_source_and_variants_differ(cdm, rows):
    sources = torch.from_numpy(rows[0]).float()
    low, full = vary(cdm, rows, 0.25).float(), vary(cdm, rows, 1.0).float()
    assert (low - sources).abs().mean() < 0.5 * (full - sources).abs().mean()
    other_variant = variants_uint8(cdm, rows[0], rows[1], rows[2] + 1, rows[3], 0.75, SEED)
    assert not torch.equal(vary(cdm, rows, 0.75), other_variant)
    assert variant_seed(SEED, 0) != variant_seed(SEED, 1) != variant_seed(SEED + 1, 1)


def test_a_cvae_variant_moves_from_its_reconstruction_toward_noise(rows):
    """Above 0, a cvae variant decodes the posterior mean of its source moved a share s toward the variant's noise."""
    torch.manual_seed(0)
    cvae = build_model("cvae", TINY["cvae"]).eval()
    sources, indices, variants, labels = (column[:8] for column in rows)
    real = torch.from_numpy(sources).float() / 127.5 - 1
    with torch.inference_mode():
        mean, _ = cvae.encoder(real, torch.from_numpy(labels))
        z = torch.cat([latents(variant_seed(SEED, int(v)), torch.tensor([i]), 8) for i, v in zip(indices, variants)])
        near = cvae.generate(mean, torch.from_numpy(labels))
        halfway = cvae.generate(math.sqrt(1 - 0.5**2) * mean + 0.5 * z, torch.from_numpy(labels))
    assert torch.equal(variants_uint8(cvae, sources, indices, variants, labels, 1e-9, SEED), to_uint8(near))
    assert torch.equal(variants_uint8(cvae, sources, indices, variants, labels, 0.5, SEED), to_uint8(halfway))


def test_a_cvae_snapshot_keeps_its_encoder_and_one_without_it_samples_but_cannot_vary(tmp_path, rows):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    cvae = build_model("cvae", TINY["cvae"]).eval()
    path = tmp_path / "model.safetensors"
    save_snapshot(path, cvae, {"class_names": ["a", "b", "c"]})
    loaded = load_snapshot(path).model
    assert all(torch.equal(a, b) for a, b in zip(loaded.encoder.state_dict().values(), cvae.encoder.state_dict().values()))
    assert torch.equal(vary(loaded, rows, 0.5), vary(cvae, rows, 0.5))
    tensors = load_file(path)  # as genaug wrote cvae snapshots before: the decoder alone
    metadata = read_snapshot_meta(path.read_bytes(), "test")
    save_file({k: v for k, v in tensors.items() if not k.startswith("encoder.")}, tmp_path / "old.safetensors",
              metadata={META_KEY: json.dumps(metadata, sort_keys=True)})
    old = load_snapshot(tmp_path / "old.safetensors").model
    assert old.encoder is None
    labels = torch.from_numpy(rows[3][:4])
    assert torch.equal(generate_uint8(old, SEED, torch.arange(4), labels, "cpu"),
                       generate_uint8(cvae, SEED, torch.arange(4), labels, "cpu"))
    with pytest.raises(GenaugError, match="this cvae snapshot keeps only its decoder.*retrain it"):
        vary(old, rows, 0.5)


def test_a_cgan_cannot_make_variants_and_says_why():
    cgan = build_model("cgan", {"resolution": 8, "channels": 1, "num_classes": 3, "z_dim": 8, "width": 4})
    with pytest.raises(GenaugError, match="a cgan snapshot cannot make variants of real images"):
        variants_uint8(cgan, np.zeros((1, 1, 8, 8), np.uint8), np.zeros(1), np.zeros(1), np.zeros(1), 0.5, SEED)


@pytest.mark.parametrize("text, message", [
    ("0.3,x", "--strength 'x': not a number"),
    ("1.5", "--strength 1.5: out of range (expected a strength from 0 to 1)"),
    ("nan", "--strength nan: out of range"),
    ("0.5,0.5", "a strength is given twice"),
])
def test_bad_strengths_are_one_line(text, message):
    with pytest.raises(GenaugError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_strengths(text)
    assert parse_strengths("0.3,0.5,0.7") == (0.3, 0.5, 0.7)
