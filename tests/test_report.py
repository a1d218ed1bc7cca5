"""Report: report.json round-trips the result, report.md shows its numbers, PNG figures show the images."""

import json

import numpy as np
import pytest
from PIL import Image

from gen_aug.evaluation.classifier import ClassifierConfig
from gen_aug.data import LabelledImages, load_data
from gen_aug.evaluation.metrics import evaluate_images
from gen_aug.evaluation.report import ACCURACY_FIGURE, SAMPLES_FIGURE, accuracy_figure, sample_grid, write_report


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    train, test = load_data("builtin:digits"), load_data("builtin:digits?split=test")
    # Real test images shifted by one pixel stand in for a generator's output.
    synthetic = LabelledImages(np.roll(test.images, 1, axis=3), test.labels, test.class_names, "shifted test")
    config = ClassifierConfig(width=4, feature_dim=16, steps=30, batch_size=64)
    result = evaluate_images(
        train, test, synthetic, seeds=(0, 1), config=config, cache_dir=tmp_path_factory.mktemp("cache")
    )
    return result, test, synthetic


def test_report_files_hold_the_result(evaluation, tmp_path):
    result, test, synthetic = evaluation
    written = write_report(result, tmp_path / "report", real=test, synthetic=synthetic)
    assert [p.name for p in written] == [ACCURACY_FIGURE, SAMPLES_FIGURE, "report.md", "report.json"]
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == sorted(p.name for p in written)  # no temporaries
    assert json.loads((tmp_path / "report" / "report.json").read_text()) == result
    text = (tmp_path / "report" / "report.md").read_text()
    consistency = f"{100 * result['class_consistency']['overall']:.1f}%"
    assert f"| class consistency (synthetic classified as their class) | {consistency} |" in text
    assert f"{result['augmentation']['gain_points']:+.2f} accuracy points" in text
    assert f"![Real test images (left) and synthetic images (right), one row per class]({SAMPLES_FIGURE})" in text
    assert text.count("\n| ") == 9 + 2 + 10  # summary rows, two header rows, one row per class
    for name in (SAMPLES_FIGURE, ACCURACY_FIGURE):
        with Image.open(tmp_path / "report" / name) as picture:
            assert picture.format == "PNG" and picture.width > 400 and picture.height > 300


def test_report_without_images_has_no_sample_grid(evaluation, tmp_path):
    result, _, _ = evaluation
    write_report(result, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ACCURACY_FIGURE, "report.md", "report.json"])
    assert SAMPLES_FIGURE not in (tmp_path / "report.md").read_text()


def test_sample_grid_places_real_left_and_synthetic_right_per_class():
    classes = ("zero", "one")

    def coloured(rgb, labels):
        pixels = np.zeros((len(labels), 3, 8, 8), np.uint8) + np.array(rgb, np.uint8)[None, :, None, None]
        return LabelledImages(pixels, np.array(labels), classes, str(rgb))

    blue, red = (0, 0, 200), (200, 0, 0)
    picture = np.asarray(sample_grid(coloured(blue, [0, 1, 0, 1, 1]), coloured(red, [1, 1, 0, 0]), per_class=2))
    is_blue, is_red = np.all(picture == blue, axis=2), np.all(picture == red, axis=2)
    tile = 48 * 48  # 8-pixel images are enlarged six times
    assert is_blue.sum() == 4 * tile and is_red.sum() == 4 * tile  # two per class; the fifth real image is left out
    assert np.flatnonzero(is_blue.any(axis=0)).max() < np.flatnonzero(is_red.any(axis=0)).min()
    rows_blue, rows_red = np.flatnonzero(is_blue.any(axis=1)), np.flatnonzero(is_red.any(axis=1))
    assert np.array_equal(rows_blue, rows_red) and len(rows_blue) == 2 * 48


def test_accuracy_figure_fits_long_class_names_and_two_classes(evaluation):
    result, _, _ = evaluation
    two = json.loads(json.dumps(result))
    two["class_names"] = ["malignant", "normal or benign tissue"]
    for summary in (two["augmentation"]["real_only"], two["augmentation"]["real_plus_synthetic"]):
        summary["per_class_recall_mean"] = [0.5, None]
        summary["per_class_recall_std"] = [0.1, None]
    picture = accuracy_figure(two)
    assert picture.width >= 420
    below_legend = np.asarray(picture)[50:]
    orange = np.all(below_legend == (230, 140, 40), axis=2)
    assert orange.any(axis=0).sum() == 2 * 13  # two real + synthetic bars ("all" and "malignant"), 13 px each
