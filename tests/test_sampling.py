"""Counter-based latents: checked bit for bit against a numpy uint64 reference, and roughly for normality.

Guards: gen_aug/sampling.py
"""

import math

import numpy as np
import pytest
import torch

from gen_aug.models import build_model
from gen_aug.sampling import generate_uint8, latents

_G, _A, _B = (np.uint64(c) for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB))


def _mix(x):
    x = (x ^ (x >> np.uint64(30))) * _A
    x = (x ^ (x >> np.uint64(27))) * _B
    return x ^ (x >> np.uint64(31))


def reference_latents(seed: int, indices: np.ndarray, z_dim: int) -> np.ndarray:
    """The same algorithm in numpy's true uint64 arithmetic: splitmix64 keys, Box-Muller on 24-bit halves."""
    with np.errstate(over="ignore"):
        seed_key = _mix(np.uint64(seed % (1 << 64)) + _G)
        row_keys = _mix(seed_key ^ _mix(indices.astype(np.uint64) * _G + _G))
        pairs = np.arange(1, math.ceil(z_dim / 2) + 1, dtype=np.uint64) * _G
        bits = _mix(row_keys[:, None] + pairs[None, :])
    scale = np.float32(2.0**-24)
    u_radius = np.float32(1) - (bits >> np.uint64(40)).astype(np.float32) * scale
    u_angle = (bits & np.uint64(0xFFFFFF)).astype(np.float32) * scale
    radius = np.sqrt(np.float32(-2) * np.log(u_radius))
    angle = np.float32(2 * math.pi) * u_angle
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], -1).reshape(len(indices), -1)[:, :z_dim]


@pytest.mark.parametrize("seed", [0, 1, 12345, -3, 2**63 + 5])
def test_latents_match_the_uint64_reference(seed):
    indices = np.array([0, 1, 2, 99, 10**9, 2**40], dtype=np.int64)
    got = latents(seed, torch.from_numpy(indices), 7).numpy()
    assert got.dtype == np.float32 and got.shape == (6, 7)
    np.testing.assert_allclose(got, reference_latents(seed, indices, 7), atol=1e-5)


def test_a_row_depends_only_on_seed_and_index():
    whole = latents(5, torch.arange(1000), 16)
    picked = latents(5, torch.tensor([999, 3, 500]), 16)
    assert torch.equal(picked, whole[[999, 3, 500]])
    assert not torch.allclose(latents(6, torch.arange(3), 16), whole[:3])
    # A shorter latent is a prefix of a longer one: the pair number, not z_dim, keys each coordinate.
    assert torch.equal(latents(5, torch.arange(10), 5), whole[:10, :5])


def test_latents_look_standard_normal_and_independent():
    z = latents(0, torch.arange(100_000), 32).double()
    assert abs(z.mean().item()) < 0.01 and abs(z.std().item() - 1) < 0.01
    assert abs((z.abs() < 1).double().mean().item() - 0.6827) < 0.005
    across_coordinates = torch.corrcoef(z[:, :8].T) - torch.eye(8, dtype=torch.float64)
    across_neighbours = torch.corrcoef(torch.stack([z[:-1, 0], z[1:, 0]]))[0, 1]
    assert across_coordinates.abs().max() < 0.02 and abs(across_neighbours) < 0.02


def test_generate_uint8_is_repeatable_per_image():
    model = build_model("cgan", {"resolution": 8, "channels": 1, "num_classes": 3, "z_dim": 16, "width": 8}).eval()
    indices, labels = torch.arange(40), torch.arange(40) % 3
    images = generate_uint8(model, 7, indices, labels, "cpu")
    assert images.dtype == torch.uint8 and images.shape == (40, 1, 8, 8)
    assert torch.equal(images, generate_uint8(model, 7, indices, labels, "cpu"))
    assert not torch.equal(images, generate_uint8(model, 8, indices, labels, "cpu"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_latents_on_cuda_match_cpu():
    indices = torch.arange(4096)
    torch.testing.assert_close(latents(3, indices, 64, "cuda").cpu(), latents(3, indices, 64), atol=1e-5, rtol=0)


def test_an_image_is_the_same_whatever_range_it_is_generated_in():
    # 32x32 RGB at default width is where CPU kernels round differently per batch shape: without fixed
    # generation chunks, dozens of pixels of these 600 images change between batch sizes.
    torch.manual_seed(0)
    model = build_model("cgan", {"resolution": 32, "channels": 3, "num_classes": 5}).eval()
    indices = torch.arange(600)
    labels = indices % 5
    whole = generate_uint8(model, 1, indices, labels, "cpu")
    for step in (77, 300):
        pieces = [generate_uint8(model, 1, indices[i : i + step], labels[i : i + step], "cpu") for i in range(0, 600, step)]
        assert torch.equal(torch.cat(pieces), whole)
    into = torch.empty_like(whole)
    assert generate_uint8(model, 1, indices, labels, "cpu", out=into) is into and torch.equal(into, whole)
