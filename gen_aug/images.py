"""The one pair of conversions between uint8 images (0..255) and model floats in [-1, 1]."""

from __future__ import annotations

import numpy as np
import torch


def to_float(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W), array or tensor -> float32 tensor in [-1, 1] on the same device."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    return tensor.to(torch.float32) / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float (N, C, H, W) in [-1, 1] -> uint8 tensor 0..255 (rounded, values outside clamped), same device."""
    return ((images.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
