"""On a CUDA machine: training, generation and a real one-GPU synthesis, the paths CPU-only CI never takes.

Run there with `pytest -m gpu`; everywhere else these skip.

Guards: gen_aug/train.py, gen_aug/sampling.py, gen_aug/synthesis/driver.py, gen_aug/synthesis/worker.py,
    gen_aug/synthesis/handoff.py
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from gen_aug.checkpoint import save_snapshot
from gen_aug.cli import main
from gen_aug.output.manifest import MANIFEST
from gen_aug.output.verification import verify
from gen_aug.models import build_model
from gen_aug.sampling import GENERATION_CHUNK, generate_uint8

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_training_on_cuda_writes_a_snapshot_that_samples(tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--data", "builtin:digits?limit_per_class=20", "--model", "cgan",
                                       "--steps", "20", "--batch-size", "32", "--device", "cuda", "--out", str(run)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["sample", "--model", str(run / "model.safetensors"), "--per-class", "2",
                                       "--out", str(tmp_path / "grid.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_an_image_on_cuda_is_the_same_whatever_range_it_is_generated_in():
    torch.manual_seed(0)
    model = build_model("cgan", {"resolution": 28, "channels": 1, "num_classes": 10}).eval().to("cuda")
    count = GENERATION_CHUNK["cuda"] + 1_000  # one full chunk and a padded one
    indices = torch.arange(count)
    labels = indices % 10
    whole = generate_uint8(model, 5, indices, labels, "cuda").cpu()
    pieces = [generate_uint8(model, 5, indices[i : i + 3_000], labels[i : i + 3_000], "cuda").cpu()
              for i in range(0, count, 3_000)]
    assert torch.equal(torch.cat(pieces), whole)
    pinned = torch.empty(whole.shape, dtype=torch.uint8, pin_memory=True)
    assert torch.equal(generate_uint8(model, 5, indices, labels, "cuda", out=pinned), whole)


def test_one_gpu_synthesis_is_complete_verified_resumes_unchanged_and_is_the_same_without_encoder_processes(tmp_path):
    snapshot = tmp_path / "model.safetensors"
    save_snapshot(snapshot, build_model("cgan", {"resolution": 28, "channels": 1, "num_classes": 3}),
                  {"class_names": ["a", "b", "c"]})
    out = tmp_path / "synth"
    command = [sys.executable, "-m", "gen_aug", "synthesize", "--model", str(snapshot), "--n", "20000",
               "--shard-size", "2500", "--gpus", "1", "--out", str(out)]
    first = subprocess.run(command, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["device"] == "cuda" and manifest["totals"]["images"] == 20_000
    assert all(worker["device"].startswith("cuda") for worker in manifest["workers"])
    assert verify(str(out)).ok
    hashes = [shard["sha256"] for shard in manifest["shards"]]
    again = subprocess.run(command + ["--resume"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert [shard["sha256"] for shard in json.loads((out / MANIFEST).read_text())["shards"]] == hashes
    assert all(worker["handoff"] == "shared memory" for worker in manifest["workers"])  # encoder processes here
    in_thread = tmp_path / "in-thread"
    command[command.index(str(out))] = str(in_thread)
    alone = subprocess.run(command + ["--encode-processes", "0"], capture_output=True, text=True)
    assert alone.returncode == 0, alone.stderr
    assert [shard["sha256"] for shard in json.loads((in_thread / MANIFEST).read_text())["shards"]] == hashes
