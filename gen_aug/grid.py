"""Grids of generated images, one row per class with its name: training previews and `genaug sample`."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from gen_aug.atomic import write_atomic
from gen_aug.images import to_uint8

MIN_CELL_PIXELS = 48  # small images are enlarged (nearest neighbour) to at least this size in a grid
GAP_PIXELS = 2


@torch.no_grad()
def class_rows(model: torch.nn.Module, per_class: int, seed: int, device: str | torch.device = "cpu") -> np.ndarray:
    """uint8 (num_classes * per_class, C, H, W): row c holds `per_class` samples of class c, drawn from `seed`."""
    labels = torch.arange(model.config.num_classes, device=device).repeat_interleave(per_class)
    z = torch.randn(len(labels), model.z_dim, generator=torch.Generator().manual_seed(seed))
    return to_uint8(model.generate(z.to(device), labels)).cpu().numpy()


@torch.no_grad()
def interpolation_rows(model: torch.nn.Module, per_class: int, seed: int, device: str | torch.device = "cpu") -> np.ndarray:
    """uint8 (num_classes * per_class, C, H, W): per class, a walk from the latent of `seed` to that of `seed + 1`.

    Every row walks the same path, so a column shows one latent (one 'style') in every class.
    """
    start, end = (torch.randn(1, model.z_dim, generator=torch.Generator().manual_seed(s)) for s in (seed, seed + 1))
    path = slerp(start, end, torch.linspace(0, 1, per_class)[:, None])  # (per_class, z_dim)
    num_classes = model.config.num_classes
    labels = torch.arange(num_classes, device=device).repeat_interleave(per_class)
    return to_uint8(model.generate(path.repeat(num_classes, 1).to(device), labels)).cpu().numpy()


def slerp(start: torch.Tensor, end: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: Gaussian latents keep their typical norm along the way (a straight line dips)."""
    cosine = (start * end).sum(dim=1, keepdim=True) / (start.norm(dim=1, keepdim=True) * end.norm(dim=1, keepdim=True))
    angle = torch.arccos(cosine.clamp(-1, 1))
    if float(angle.min()) < 1e-6:
        return start + t * (end - start)
    return (torch.sin((1 - t) * angle) * start + torch.sin(t * angle) * end) / torch.sin(angle)


def grid_image(images: np.ndarray, rows: int, row_names: list[str]) -> Image.Image:
    """uint8 (rows * columns, C, H, W) -> one picture, class names in a column on the left."""
    count, channels, height, width = images.shape
    columns = count // rows
    scale = max(1, math.ceil(MIN_CELL_PIXELS / max(height, width)))
    cell_h, cell_w = height * scale + GAP_PIXELS, width * scale + GAP_PIXELS
    label_w = 8 + 6 * max(len(name) for name in row_names)
    canvas = Image.new("RGB", (label_w + columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        picture = Image.fromarray(image[0] if channels == 1 else image.transpose(1, 2, 0))
        picture = picture.resize((width * scale, height * scale), Image.NEAREST).convert("RGB")
        canvas.paste(picture, (label_w + column * cell_w, row * cell_h))
    for row, name in enumerate(row_names):
        draw.text((4, row * cell_h + cell_h // 2 - 6), name, fill="black")
    return canvas


def save_grid(images: np.ndarray, class_names: list[str], path: str | os.PathLike) -> Path:
    """Write `images` (rows = classes) as a PNG, atomically."""
    buffer = io.BytesIO()
    grid_image(images, len(class_names), list(class_names)).save(buffer, format="PNG")
    write_atomic(Path(path), buffer.getvalue())
    return Path(path)


def draw_samples(snapshot: str | os.PathLike, out: str | os.PathLike, per_class: int, seed: int = 0, interpolate: bool = False) -> Path:
    """Load a snapshot and write a labelled grid of `per_class` samples (or interpolation steps) per class."""
    from gen_aug.checkpoint import load_snapshot
    from gen_aug.errors import GenaugError

    if Path(out).suffix.lower() != ".png":
        raise GenaugError(f"--out {out}: not a .png file name (expected e.g. grid.png)")
    loaded = load_snapshot(snapshot)
    rows = (interpolation_rows if interpolate else class_rows)(loaded.model, per_class, seed)
    return save_grid(rows, loaded.meta["class_names"], out)
