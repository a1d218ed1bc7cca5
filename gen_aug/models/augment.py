"""DiffAugment (Zhao et al. 2020): differentiable translation, cutout and colour jitter for scarce data.

The discriminator sees real and generated images through the same random augmentations, so it
cannot memorise the few real images, and gradients flow through the augmentation to the generator.
Every draw comes from an explicit torch.Generator so that training is reproducible and resumable.
"""

from __future__ import annotations

import torch

from gen_aug.checks import require

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 1 / 8  # largest shift, as a share of the image size
CUTOUT_RATIO = 1 / 2  # side of the erased square, as a share of the image size


def parse_policy(policy: str) -> tuple[str, ...]:
    """'translation,cutout,color' -> ('translation', 'cutout', 'color'); '' or 'off' -> ()."""
    if policy in ("", "off"):
        return ()
    names = tuple(name.strip() for name in policy.split(","))
    unknown = [name for name in names if name not in POLICIES]
    require(not unknown, "augment", policy, f"'auto', 'off' or a comma list of {', '.join(POLICIES)}")
    return names


def diff_augment(images: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator) -> torch.Tensor:
    """Apply each augmentation of `policy`, drawn independently per image; images (N, C, H, W) in [-1, 1]."""
    for name in policy:
        images = AUGMENTATIONS[name](images, generator)
    return images


def _uniform(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One uniform [0, 1) draw per image, shaped (N, 1, 1, 1)."""
    draw = torch.rand(images.shape[0], 1, 1, 1, generator=generator, device=generator.device)
    return draw.to(device=images.device, dtype=images.dtype)


def color(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    images = images + (_uniform(images, generator) - 0.5)  # brightness
    if images.shape[1] == 3:
        mean = images.mean(dim=1, keepdim=True)
        images = (images - mean) * (_uniform(images, generator) * 2) + mean  # saturation
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * (_uniform(images, generator) + 0.5) + mean  # contrast


def translation(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to 1/8 of its size; edge pixels repeat into the gap."""
    n, _, height, width = images.shape
    shift = int(height * TRANSLATION_RATIO + 0.5)
    if shift == 0:
        return images
    offsets = torch.randint(-shift, shift + 1, (2, n, 1, 1), generator=generator, device=generator.device)
    offsets = offsets.to(images.device)
    rows = (torch.arange(height, device=images.device)[None, :, None] + offsets[0]).clamp(0, height - 1)
    cols = (torch.arange(width, device=images.device)[None, None, :] + offsets[1]).clamp(0, width - 1)
    batch = torch.arange(n, device=images.device)[:, None, None]
    return images.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # (N, H, W, C) gathered back


def cutout(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Set a square of half the image side, at a random place per image, to 0 (mid-grey)."""
    n, _, height, width = images.shape
    size_h, size_w = int(height * CUTOUT_RATIO + 0.5), int(width * CUTOUT_RATIO + 0.5)
    centres = torch.rand(2, n, 1, 1, generator=generator, device=generator.device).to(images.device)
    top = (centres[0] * (height + 1 - size_h % 2)).long() - size_h // 2
    left = (centres[1] * (width + 1 - size_w % 2)).long() - size_w // 2
    rows = torch.arange(height, device=images.device)[None, :, None]
    cols = torch.arange(width, device=images.device)[None, None, :]
    erased = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)  # (N, H, W)
    return images * (~erased).unsqueeze(1).to(images.dtype)


AUGMENTATIONS = {"color": color, "translation": translation, "cutout": cutout}
