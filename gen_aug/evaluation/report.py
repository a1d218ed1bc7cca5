"""An evaluation written for people: report.json, report.md and its figures, written atomically, report.json last."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gen_aug.atomic import write_atomic
from gen_aug.data import LabelledImages
from gen_aug.errors import GenaugError
from gen_aug.evaluation.figures import differences_figure, memorisation_figure, recall_figure
from gen_aug.evaluation.markdown import (
    DIFFERENCES_FIGURE,
    MEMORISATION_FIGURE,
    RECALL_FIGURE,
    SAMPLES_FIGURE,
    markdown,
)
from gen_aug.evaluation.result import EvaluationResult
from gen_aug.grid import grid_image

REPORT_JSON = "report.json"
INK, PAPER = (30, 30, 30), (255, 255, 255)


def write_report(
    result: EvaluationResult,
    report_dir: str | os.PathLike,
    *,
    real: LabelledImages | None = None,
    synthetic: LabelledImages | None = None,
    real_train: LabelledImages | None = None,
    samples_per_class: int = 8,
) -> list[Path]:
    """Write figures, report.md, then report.json (last: its presence means the report is whole).

    `result` is what `evaluate_images` returns (with its inputs, when known). Figures of images
    need the images themselves: the sample grid is drawn when `real` (test) and `synthetic` are
    given, the memorised pairs when `real_train` and `synthetic` are.
    """
    folder = Path(report_dir)
    figures = {DIFFERENCES_FIGURE: differences_figure(result), RECALL_FIGURE: recall_figure(result)}
    if result.memorisation is not None and real_train is not None and synthetic is not None:
        figures[MEMORISATION_FIGURE] = memorisation_figure(result, real_train, synthetic)
    if real is not None and synthetic is not None:
        figures[SAMPLES_FIGURE] = _png_bytes(sample_grid(real, synthetic, samples_per_class))
    written = [_write(folder / name, payload) for name, payload in figures.items()]
    written.append(_write(folder / "report.md", markdown(result, figures=list(figures)).encode()))
    written.append(_write(folder / REPORT_JSON, (json.dumps(result.to_dict(), indent=2) + "\n").encode()))
    return written


def read_report(path: str | os.PathLike) -> EvaluationResult | None:
    """The result a report.json holds; None when it is absent, unreadable or not a report (it is computed again)."""
    try:
        return EvaluationResult.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, GenaugError):
        return None


def _write(path: Path, payload: bytes) -> Path:
    write_atomic(path, payload)
    return path


def _png_bytes(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def sample_grid(real: LabelledImages, synthetic: LabelledImages, per_class: int = 8) -> Image.Image:
    """One row per class: the first `per_class` real images, a gap, the first `per_class` synthetic ones."""
    names = list(real.class_names)
    real_grid = grid_image(first_per_class(real, per_class), len(names), names)
    synthetic_grid = grid_image(first_per_class(synthetic, per_class), len(names), [""] * len(names))
    header, gap = 22, 16
    canvas = Image.new("RGB", (real_grid.width + gap + synthetic_grid.width, header + real_grid.height), PAPER)
    canvas.paste(real_grid, (0, header))
    canvas.paste(synthetic_grid, (real_grid.width + gap, header))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=14)
    draw.text((4, 3), "real", fill=INK, font=font)
    draw.text((real_grid.width + gap + 8, 3), "synthetic", fill=INK, font=font)
    return canvas


def first_per_class(data: LabelledImages, per_class: int) -> np.ndarray:
    """uint8 (num_classes * per_class, C, H, W): each class's first images in order, white where it has too few."""
    tiles = np.full((data.num_classes, per_class, *data.shape), 255, dtype=np.uint8)
    for label in range(data.num_classes):
        mine = data.images[data.labels == label][:per_class]
        tiles[label, : len(mine)] = mine
    return tiles.reshape(-1, *data.shape)
