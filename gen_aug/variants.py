"""Variants of real images: each noised part of the way, then denoised under a class by the diffusion model.

SDEdit (Meng et al., 2022) on EDM's sampler. The few-image methods that beat classical augmentation
(DA-Fusion, Diff-Mix) start from the real images rather than pure noise; this is that step with the
user's own small class-conditional model.

Variant v of source image s comes from (seed, s, v) and the strength alone: its noise is the latent
of index s under a seed mixed from (seed, v), so it does not depend on how many variants are made
per image, which images are varied together, or how the work is split over batches and workers.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gen_aug.errors import GenaugError
from gen_aug.sampling import latents, uint8_in_chunks

MAX_VARIANTS_PER_IMAGE = 10_000
_MASK_64 = (1 << 64) - 1


def variant_seed(seed: int, variant: int) -> int:
    """The latent seed of variant number `variant`: splitmix64 of (seed, variant), a different stream per variant."""
    x = (seed * 0x9E3779B97F4A7C15 + (variant + 1) * 0xBF58476D1CE4E5B9) & _MASK_64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK_64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK_64
    return (x ^ (x >> 31)) >> 1  # below 2^63: a seed latents takes


def parse_strengths(text: str, name: str = "--strength") -> tuple[float, ...]:
    """'0.3,0.5,0.7' -> (0.3, 0.5, 0.7): the share of the sampler's path each variant runs, each 0 to 1."""
    strengths = []
    for part in str(text).split(","):
        try:
            value = float(part)
        except ValueError:
            raise GenaugError(f"{name} {part.strip()!r}: not a number (expected strengths from 0 to 1, "
                              "such as 0.3,0.5,0.7)") from None
        if not (math.isfinite(value) and 0 <= value <= 1):
            raise GenaugError(f"{name} {part.strip()}: out of range (expected a strength from 0 to 1)")
        strengths.append(value)
    if len(set(strengths)) != len(strengths):
        raise GenaugError(f"{name} {text!r}: a strength is given twice (expected distinct strengths)")
    return tuple(strengths)


def check_can_vary(model: torch.nn.Module, where: str) -> None:
    """Only a model with a way from an image back to its noise (a cdm's noising, a cvae's encoder) can start from a real
    image."""
    family = getattr(model, "family", type(model).__name__)
    if not hasattr(model, "vary"):
        raise GenaugError(
            f"{where}: a {family} snapshot cannot make variants of real images (expected a cdm or cvae snapshot: "
            "a GAN has no way back from an image to its latent)"
        )
    if getattr(model, "encoder", True) is None:
        raise GenaugError(
            f"{where}: this {family} snapshot keeps only its decoder, as genaug wrote them before variants of real "
            "images (expected one that keeps its encoder: retrain it with genaug train)"
        )


def variants_uint8(model: torch.nn.Module, sources: np.ndarray, source_indices: np.ndarray, variants: np.ndarray,
                   labels: np.ndarray, strength: float, seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, C, H, W) variants: row n is variant variants[n] of real image sources[n] (uint8 C x H x W,
    number source_indices[n] of its split), rendered under labels[n] at `strength`."""
    check_can_vary(model, "variants")
    device = torch.device(device)
    count = len(sources)
    if not (len(source_indices) == len(variants) == len(labels) == count):
        raise ValueError("sources, source_indices, variants and labels need one entry per row")
    images = torch.from_numpy(np.ascontiguousarray(sources))
    source_indices = torch.as_tensor(source_indices, dtype=torch.int64)
    variants = torch.as_tensor(variants, dtype=torch.int64)
    labels = torch.as_tensor(labels, dtype=torch.int64)

    def draw(rows: torch.Tensor) -> torch.Tensor:
        z = torch.empty((len(rows), model.z_dim), dtype=torch.float32, device=device)
        for variant in torch.unique(variants[rows]).tolist():
            mine = variants[rows] == variant
            z[mine.to(device)] = latents(variant_seed(seed, variant), source_indices[rows][mine], model.z_dim, device)
        real = images[rows].to(device=device, dtype=torch.float32) / 127.5 - 1.0
        return model.vary(real, z, labels[rows].to(device), strength)

    return uint8_in_chunks(model, count, device, draw, source_indices)
