"""`genaug bench` end to end on a tiny model: every figure present, positive, and the ratio computed from them.

Guards: gen_aug/bench.py
"""

import json

import pytest
import torch

from click.testing import CliRunner

from gen_aug.bench import median_rate, median_run
from gen_aug.cli import main


def test_bench_measures_every_figure_and_writes_json(tmp_path):
    result = CliRunner().invoke(main, [
        "bench", "--resolution", "8", "--n", "300", "--workers", "1", "--shard-size", "100", "--seconds", "0.2",
        "--format", "parquet", "--format", "raw", "--encode-processes", "1", "--json", str(tmp_path / "bench.json"),
    ])
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "bench.json").read_text())
    assert figures["machine"]["cores"] >= 1 and figures["workers"] == 1 and figures["device"] == "cpu"
    assert figures["generator_images_per_sec_per_worker"] > 0
    assert figures["generator_rounds"] >= 6  # at least 3 before the end-to-end runs and 3 after
    for image_format in ("parquet", "raw"):
        f = figures["formats"][image_format]
        assert f["images"] == 300 and f["end_to_end_images_per_sec"] > 0
        assert f["encoder_images_per_sec_per_core"] > 0 and min(f["encoder_images_per_sec_all_cores"].values()) > 0
        expected_ceiling = min(figures["generator_images_per_sec_per_worker"] * 1,
                               f["encoder_images_per_sec_per_core"] * figures["cores"])
        assert abs(f["ceiling_images_per_sec"] - expected_ceiling) <= 0.1
        assert abs(f["ratio_to_ceiling"] - f["end_to_end_images_per_sec"] / f["ceiling_images_per_sec"]) < 1e-3
        assert f["driver_peak_rss_mib"] > 10 and f["worker_peak_rss_mib"] > 10
        assert f["encoders_per_worker"] == "1 process"  # --encode-processes reached the end-to-end run
        assert f["handoff"] == "shared memory"
        assert f["encoder_rounds"] >= 3 and "speedup_over_one_worker" not in f  # one worker: nothing to compare
    assert "ratio" in result.output and "parquet" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_bench_refuses_gpus_without_cuda():
    result = CliRunner().invoke(main, ["bench", "--gpus", "1"])
    assert result.exit_code == 1 and "--gpus 1: torch sees no CUDA device" in result.output


def test_bench_scaling_compares_all_workers_with_one_in_the_same_run(tmp_path):
    result = CliRunner().invoke(main, [
        "bench", "--resolution", "8", "--n", "400", "--workers", "2", "--shard-size", "100", "--seconds", "0.2",
        "--format", "raw", "--scaling", "--repeats", "2", "--json", str(tmp_path / "bench.json"),
    ])
    assert result.exit_code == 0, result.output
    raw = json.loads((tmp_path / "bench.json").read_text())["formats"]["raw"]
    assert len(raw["end_to_end_runs_images_per_sec"]) == 2 and len(raw["one_worker_runs_images_per_sec"]) == 2
    assert raw["one_worker_images_per_sec"] == pytest.approx(sum(raw["one_worker_runs_images_per_sec"]) / 2, abs=0.1)
    assert raw["speedup_over_one_worker"] == pytest.approx(
        raw["end_to_end_images_per_sec"] / raw["one_worker_images_per_sec"], abs=1e-3)
    assert "scaling  raw: 2 workers" in result.output and "medians of 2 alternating runs" in result.output


def test_median_rate_ignores_one_round_that_another_process_slowed():
    rounds = [(1000, 1.0), (1000, 1.0), (1000, 10.0), (1000, 1.0), (1000, 1.1)]
    assert median_rate(rounds) == pytest.approx(1000.0)


def test_median_run_keeps_the_median_rate_and_the_highest_memory():
    runs = [{"end_to_end_images_per_sec": rate, "driver_peak_rss_mib": mib, "worker_peak_rss_mib": mib + 1, "images": 10}
            for rate, mib in ((900.0, 500), (300.0, 700), (1000.0, 600))]
    figures = median_run(runs)
    assert figures["end_to_end_images_per_sec"] == 900.0 and figures["end_to_end_runs_images_per_sec"] == [900.0, 300.0, 1000.0]
    assert figures["driver_peak_rss_mib"] == 700 and figures["worker_peak_rss_mib"] == 701 and figures["images"] == 10
