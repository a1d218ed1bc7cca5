"""An evaluation written for people: report.json, report.md and PNG figures drawn with Pillow."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gen_aug.atomic import write_atomic
from gen_aug.data import LabelledImages
from gen_aug.grid import grid_image

SAMPLES_FIGURE = "samples.png"
ACCURACY_FIGURE = "per_class_accuracy.png"
REAL_COLOUR, MIXED_COLOUR = (120, 144, 176), (230, 140, 40)
INK, GRID, PAPER = (30, 30, 30), (215, 215, 215), (255, 255, 255)


def write_report(
    result: dict,
    report_dir: str | os.PathLike,
    *,
    real: LabelledImages | None = None,
    synthetic: LabelledImages | None = None,
    samples_per_class: int = 8,
) -> list[Path]:
    """Write figures, report.md, then report.json (last: its presence means the report is whole).

    `result` is what `evaluate_images` returns; the sample grid needs the images themselves and is
    drawn when both `real` and `synthetic` are given. Each file is written atomically.
    """
    folder = Path(report_dir)
    figures = {ACCURACY_FIGURE: accuracy_figure(result)}
    if real is not None and synthetic is not None:
        figures[SAMPLES_FIGURE] = sample_grid(real, synthetic, samples_per_class)
    written = []
    for name, picture in figures.items():
        written.append(_write(folder / name, _png_bytes(picture)))
    written.append(_write(folder / "report.md", markdown(result, figures=list(figures)).encode()))
    written.append(_write(folder / "report.json", (json.dumps(result, indent=2) + "\n").encode()))
    return written


def _write(path: Path, payload: bytes) -> Path:
    write_atomic(path, payload)
    return path


def _png_bytes(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def repeats_note(augmentation: dict) -> str:
    """', real images x3' when the real images were repeated to a real share, else ''."""
    repeats = augmentation.get("real_repeats", 1)
    return f", real images x{repeats}" if repeats > 1 else ""


def _mean_std(summary: dict) -> str:
    return f"{100 * summary['accuracy_mean']:.1f}% ± {100 * summary['accuracy_std']:.1f}"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def markdown(result: dict, figures: Sequence[str] = ()) -> str:
    """The report as Markdown: a summary table, a per-class table, then the figures."""
    data, settings = result["data"], result["settings"]
    consistency, frechet = result["class_consistency"], result["frechet_distance"]
    quality, tstr, augmentation = result["precision_recall"], result["tstr"], result["augmentation"]
    baseline = quality["real_train_vs_test"]
    seeds = len(settings["seeds"])
    lines = [
        "# genaug evaluation",
        "",
        f"- real train: `{data['real_train']['description']}` ({data['real_train']['images']:,} images)",
        f"- real test: `{data['real_test']['description']}` ({data['real_test']['images']:,} images)",
        f"- synthetic: `{data['synthetic']['description']}` ({data['synthetic']['images']:,} images)",
        f"- classifier: {settings['classifier']['steps']} steps of {settings['classifier']['batch_size']} images, "
        f"seeds {', '.join(map(str, settings['seeds']))}; distances on at most {settings['sample_size']:,} "
        f"images per set (sample seed {settings['sample_seed']}), k={settings['k']}",
        "",
        "| metric | value | for comparison |",
        "| --- | --- | --- |",
        f"| reference classifier, real test accuracy | {_percent(result['reference_classifier']['test_accuracy'])} | |",
        f"| class consistency (synthetic classified as their class) | {_percent(consistency['overall'])} | "
        "reference accuracy on real test |",
        f"| Fréchet distance, real test vs synthetic | {_number(frechet['overall'])} | "
        f"real train vs real test: {_number(frechet['real_train_vs_test'])} |",
        f"| precision / recall (k={quality['k']}) | {quality['precision']:.3f} / {quality['recall']:.3f} | "
        f"real train vs real test: {baseline['precision']:.3f} / {baseline['recall']:.3f} |",
        f"| train on synthetic, test on real (mean ± std, {seeds} seeds) | {_mean_std(tstr)} | "
        f"real only: {_mean_std(augmentation['real_only'])} |",
        f"| real + synthetic (ratio {augmentation['ratio']:g}, +{augmentation['synthetic_images_added']:,} images"
        f"{repeats_note(augmentation)}) "
        f"| {_mean_std(augmentation['real_plus_synthetic'])} | real only: {_mean_std(augmentation['real_only'])} |",
        f"| augmentation gain | {augmentation['gain_points']:+.2f} accuracy points | |",
        "",
        "## Per class",
        "",
        "| class | real test | synthetic | consistency | Fréchet | reference recall | real only | real + synthetic "
        "| train on synthetic |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, name in enumerate(result["class_names"]):
        cells = [
            name,
            f"{data['real_test']['class_counts'][label]:,}",
            f"{data['synthetic']['class_counts'][label]:,}",
            _percent(consistency["per_class"][label]),
            _number(frechet["per_class"][label]),
            _percent(result["reference_classifier"]["per_class_recall"][label]),
            _percent(augmentation["real_only"]["per_class_recall_mean"][label]),
            _percent(augmentation["real_plus_synthetic"]["per_class_recall_mean"][label]),
            _percent(tstr["per_class_recall_mean"][label]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    captions = {
        SAMPLES_FIGURE: "Real test images (left) and synthetic images (right), one row per class",
        ACCURACY_FIGURE: f"Test recall per class, real only vs real + synthetic (mean and std over {seeds} seeds)",
    }
    for figure in figures:
        lines += ["", f"![{captions[figure]}]({figure})", "", f"*{captions[figure]}.*"]
    return "\n".join(lines) + "\n"


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


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
    font = _font(14)
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


def accuracy_figure(result: dict) -> Image.Image:
    """Grouped bars, overall accuracy then per-class recall, real only vs real + synthetic, with std whiskers."""
    augmentation = result["augmentation"]
    groups = ["all", *result["class_names"]]
    series = []
    for summary in (augmentation["real_only"], augmentation["real_plus_synthetic"]):
        means = [summary["accuracy_mean"], *summary["per_class_recall_mean"]]
        stds = [summary["accuracy_std"], *summary["per_class_recall_std"]]
        series.append((means, stds))
    font, small = _font(14), _font(12)
    labels = [name if len(name) <= 12 else name[:11] + "…" for name in groups]
    bar_w = 14
    group_w = max(2 * bar_w + 18, int(max(small.getlength(label) for label in labels)) + 8)
    left, right, top, bottom = 52, 16, 56, 44
    plot_h, plot_w = 260, len(groups) * group_w
    canvas = Image.new("RGB", (max(left + plot_w + right, 420), top + plot_h + bottom), PAPER)
    draw = ImageDraw.Draw(canvas)
    seeds = len(result["settings"]["seeds"])
    draw.text((left, 6), f"test accuracy per class (mean ± std, {seeds} seeds)", fill=INK, font=font)

    def y_of(value: float) -> float:
        return top + plot_h * (1 - value)

    for tick in np.linspace(0, 1, 6):
        y = y_of(tick)
        draw.line((left, y, left + plot_w, y), fill=GRID)
        draw.text((left - 6, y), f"{tick:.1f}", fill=INK, font=small, anchor="rm")
    for index, (name, colour) in enumerate((("real only", REAL_COLOUR), ("real + synthetic", MIXED_COLOUR))):
        x = left + index * 150
        draw.rectangle((x, 30, x + 12, 42), fill=colour)
        draw.text((x + 18, 36), name, fill=INK, font=small, anchor="lm")
    for group, label in enumerate(labels):
        x0 = left + group * group_w + group_w // 2 - bar_w
        for which, (means, stds) in enumerate(series):
            mean, std = means[group], stds[group]
            if mean is None:
                continue
            x = x0 + which * bar_w
            draw.rectangle((x, y_of(mean), x + bar_w - 2, y_of(0)), fill=(REAL_COLOUR, MIXED_COLOUR)[which])
            if std:
                centre = x + (bar_w - 2) / 2
                low, high = y_of(max(mean - std, 0)), y_of(min(mean + std, 1))
                draw.line((centre, low, centre, high), fill=INK, width=1)
                draw.line((centre - 3, high, centre + 3, high), fill=INK)
                draw.line((centre - 3, low, centre + 3, low), fill=INK)
        draw.text((x0 + bar_w, y_of(0) + 6), label, fill=INK, font=small, anchor="ma")
    draw.line((left, y_of(0), left + plot_w, y_of(0)), fill=INK)
    return canvas
