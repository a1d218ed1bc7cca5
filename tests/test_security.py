"""Security: files from strangers never run code, names never leave the output folder, Ray serves no dashboard.

Each test builds the attack for real and fails if the protection it checks were taken out.

Guards: gen_aug/checkpoint.py, gen_aug/train.py, gen_aug/models/cdm.py, gen_aug/output/formats.py,
    gen_aug/output/manifest.py, gen_aug/output/verification.py, gen_aug/output/reader.py,
    gen_aug/synthesis/session.py
"""

import json
import os
import pickle
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from gen_aug.checkpoint import load_snapshot, save_snapshot
from gen_aug.cli import main
from gen_aug.data import load_data
from gen_aug.errors import GenaugError
from gen_aug.output.manifest import MANIFEST
from gen_aug.output.verification import verify
from gen_aug.models import build_model
from gen_aug.output.formats import MAX_PATH_PART_BYTES, class_dirs
from gen_aug.synthesis.driver import synthesize
from gen_aug.synthesis.options import SynthesisOptions

REPO = Path(__file__).resolve().parents[1]
TINY = {"resolution": 8, "channels": 1, "z_dim": 8, "width": 4}


class MarkerPayload:
    """Unpickling this touches `marker`: proof that code from the file ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def payload_files(folder: Path, name: str, marker: Path) -> list[Path]:
    """The payload as a plain pickle and as a torch.save zip, each under `name`."""
    plain, zipped = folder / "plain" / name, folder / "torch" / name
    for path in (plain, zipped):
        path.parent.mkdir(parents=True)
    plain.write_bytes(pickle.dumps({"weights": MarkerPayload(marker)}))
    torch.save({"format_version": 1, "step": MarkerPayload(marker)}, zipped)
    return [plain, zipped]


def test_the_payload_is_live_when_unpickled(tmp_path):
    """The control: loaded without a safe loader, these very files run their code."""
    marker = tmp_path / "ran"
    plain, zipped = payload_files(tmp_path, "payload", marker)
    pickle.loads(plain.read_bytes())
    assert marker.exists()
    marker.unlink()
    torch.load(zipped, weights_only=False)
    assert marker.exists()


def test_a_pickle_named_model_safetensors_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran"
    for path in payload_files(tmp_path, "model.safetensors", marker):
        with pytest.raises(GenaugError, match="not a safetensors file"):
            load_snapshot(path)
        for args in (["sample", "--out", str(tmp_path / "grid.png")],
                     ["synthesize", "--n", "10", "--out", str(tmp_path / "synth")]):
            result = CliRunner().invoke(main, [*args, "--model", str(path)])
            assert result.exit_code == 1 and result.output.startswith(f"Error: snapshot {path}: not a safetensors")
    assert not marker.exists()
    assert not (tmp_path / "grid.png").exists() and not (tmp_path / "synth").exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickle_as_resume_state_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran"
    for path in payload_files(tmp_path, "train_state.pt", marker):
        result = CliRunner().invoke(main, ["train", "--data", "builtin:digits?limit_per_class=2", "--steps", "2",
                                           "--out", str(path.parent), "--resume"])
        assert result.exit_code == 1 and "not a readable genaug train state" in result.output, result.output
    assert not marker.exists()


def crafted_cdm_snapshot(path: Path, **config) -> str:
    """A tiny real cdm snapshot whose metadata claims `config`: about 1 MB a stranger could send."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    model = build_model("cdm", {"resolution": 8, "channels": 1, "num_classes": 2, "width": 4})
    save_snapshot(path, model, {"class_names": ["a", "b"]})
    with safe_open(str(path), "pt") as opened:
        meta = json.loads(opened.metadata()["genaug"])
        tensors = {name: opened.get_tensor(name) for name in opened.keys()}
    meta["config"].update(config)
    save_file(tensors, path, metadata={"genaug": json.dumps(meta)})
    return str(path)


@pytest.mark.parametrize("config, why", [
    ({"attention": [1] * 10**6}, "attention = [1, 1, 1"),  # the message per item was built from the whole list
    ({"depth": 100_000}, "depth = 100000 (expected 1 to 16)"),  # 8.6 GB of blocks were built before the check
    ({"width": 10**6}, "width = 1000000 (expected 1 to 4096)"),
])
def test_a_crafted_snapshot_config_is_refused_at_once(tmp_path, config, why):
    snapshot = crafted_cdm_snapshot(tmp_path / "crafted.safetensors", **config)
    out = tmp_path / "out"
    # A subprocess with a deadline: before the bounds, these hung for minutes rather than failing.
    result = subprocess.run([sys.executable, "-m", "gen_aug", "synthesize", "--model", snapshot, "--n", "4",
                             "--out", str(out)], capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and why in lines[0], result.stderr[-2000:]
    assert len(lines[0]) < 400 and not out.exists()


@pytest.mark.parametrize("config, why", [
    ({"sigma_max": float("inf")}, "sigma_max = inf (expected a finite number)"),  # every latent became inf
    ({"sigma_data": float("nan")}, "sigma_data = nan (expected a finite number)"),  # NaN > 0 is False, yet passed
])
def test_a_non_finite_cdm_setting_is_refused_at_load(tmp_path, config, why):
    snapshot = crafted_cdm_snapshot(tmp_path / "crafted.safetensors", **config)
    with pytest.raises(GenaugError) as error:
        load_snapshot(snapshot)
    assert str(error.value) == f"snapshot {snapshot}: model cdm: {why}"


def snapshot_with_classes(path: Path, class_names: list[str]) -> str:
    model = build_model("cgan", TINY | {"num_classes": len(class_names)})
    save_snapshot(path, model, {"class_names": class_names})
    return str(path)


def files_outside(folder: Path, inside: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_relative_to(inside)}


def hostile_snapshot(tmp_path: Path) -> str:
    """Class names a stranger can write into a snapshot's metadata."""
    names = ["../escape", "a/../../up", f"{tmp_path}/absolute", "nul\x00byte", "..", "back\\slash", "x" * 300,
             # the names genaug writes at the root: a class folder of one never let the job finish
             "_manifest.json", "manifest.json", ".genaug", "data", "README.md", "readme.MD"]
    return snapshot_with_classes(tmp_path / "hostile.safetensors", names)


def folder_snapshot(tmp_path: Path) -> str:
    """Class names from folder names: reserved characters, a name at the 255-byte limit, NFC/NFD twins."""
    names = ["x..", "a:b*c?", "back\\slash", "x" * 255, unicodedata.normalize("NFC", "café"),
             unicodedata.normalize("NFD", "café")]
    for name in names:
        (tmp_path / "set" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "set" / name / "0.png")
    data = load_data(f"folder:{tmp_path}/set")
    assert sorted(data.class_names) == sorted(names)
    return snapshot_with_classes(tmp_path / "folders.safetensors", list(data.class_names))


@pytest.mark.ray
@pytest.mark.parametrize("make_snapshot", [hostile_snapshot, folder_snapshot], ids=["snapshot-meta", "folder-names"])
def test_class_names_cannot_leave_the_png_output(ray_local, tmp_path, make_snapshot):
    snapshot = make_snapshot(tmp_path)
    class_names = tuple(load_snapshot(snapshot).meta["class_names"])
    before = files_outside(tmp_path, tmp_path / "out")
    n = 2 * len(class_names)
    synthesize(SynthesisOptions(snapshot, str(tmp_path / "out"), n=n, shard_size=5, workers=1, format="png",
                                progress=False))
    assert files_outside(tmp_path, tmp_path / "out") == before
    folders = sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir())
    assert folders == sorted(class_dirs(class_names)) and len(folders) == len(class_names)
    assert all(len(name.encode()) <= MAX_PATH_PART_BYTES and not name.startswith(".") for name in folders)
    pngs = list((tmp_path / "out").rglob("*.png"))
    assert len(pngs) == n and all(p.parent.parent == tmp_path / "out" for p in pngs)
    assert verify(str(tmp_path / "out")).ok


def output_pointing_outside(tmp_path: Path, **options) -> tuple[str, Path, bytes]:
    """A finished output whose manifest sends shard 0 to a good copy outside, while the shard inside is corrupt.

    A reader that followed the manifest's path would find the hash it expects there and trust the
    corrupt shard; one that reads only the plan's own paths finds it corrupt. Returns (snapshot, out,
    shard 0's good bytes).
    """
    snapshot = snapshot_with_classes(tmp_path / "model.safetensors", ["cat", "dog", "owl"])
    out = tmp_path / "out"
    synthesize(SynthesisOptions(snapshot, str(out), **options))
    good = (out / "data/train-00000-of-00003.parquet").read_bytes()
    shutil.copy(out / "data/train-00000-of-00003.parquet", tmp_path / "outside.parquet")
    (out / "data/train-00000-of-00003.parquet").write_bytes(good[: len(good) // 2])
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["shards"][0]["file"] = "../outside.parquet"
    (out / MANIFEST).write_text(json.dumps(manifest))
    return snapshot, out, good


JOB = {"n": 30, "shard_size": 10, "workers": 1, "progress": False}


@pytest.mark.ray
def test_manifest_paths_outside_the_output_are_refused_by_verify_and_resume(ray_local, tmp_path):
    snapshot, out, good = output_pointing_outside(tmp_path, **JOB)
    result = CliRunner().invoke(main, ["verify", str(out)])
    assert result.exit_code == 1 and "file '../outside.parquet' escapes the output folder" in result.output
    resumed = synthesize(SynthesisOptions(snapshot, str(out), resume=True, **JOB))
    assert resumed["images_resumed"] == 20  # shards 1 and 2 kept, shard 0 written again inside
    assert (out / "data/train-00000-of-00003.parquet").read_bytes() == good
    assert (tmp_path / "outside.parquet").read_bytes() == good
    assert verify(str(out)).ok


@pytest.mark.ray
def test_manifest_paths_outside_the_output_are_refused_by_the_reader(ray_local, tmp_path):
    reader = pytest.importorskip("gen_aug.output.reader")
    _, out, _ = output_pointing_outside(tmp_path, **JOB)
    with pytest.raises(GenaugError, match="'../outside.parquet' escapes the output folder"):
        reader.SyntheticImages(out)


# Runs `genaug synthesize` as a user would, with ray.init wrapped to record how it was called and
# what the started Ray serves; the real ray.init does all the work.
RAY_INIT_WITNESS = """
import json
import os
import socket
import sys

import ray

from gen_aug.cli import main

seen = {}
real_init = ray.init


def answers(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def own_address():  # the address other hosts reach this machine at (a UDP connect sends nothing)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        return probe.getsockname()[0]


def init(*args, **kwargs):
    context = real_init(*args, **kwargs)
    node = ray._private.worker.global_worker.node
    ports = {"gcs": int(node.gcs_address.rsplit(":", 1)[1]), "raylet": node.node_manager_port}
    host = own_address()
    seen.update(
        kwargs=kwargs,
        node_ip=node.node_ip_address,
        own_address=host,
        webui_url=node.address_info.get("webui_url"),
        dashboard_answers=[answers(host, 8265) for host in ("127.0.0.1", host)],
        loopback_answers={name: answers("127.0.0.1", port) for name, port in ports.items()},
        own_address_answers={name: answers(host, port) for name, port in ports.items()},
        auth_mode=os.environ.get("RAY_AUTH_MODE"),
    )
    return context


ray.init = init
main(sys.argv[1:], standalone_mode=False)
print(json.dumps(seen))
"""


@pytest.mark.ray
def test_genaug_starts_ray_on_loopback_only_without_a_dashboard_and_with_token_authentication(tmp_path):
    snapshot = snapshot_with_classes(tmp_path / "model.safetensors", ["cat", "dog"])
    env = {key: value for key, value in os.environ.items() if key != "RAY_AUTH_MODE"}  # Ray's own default
    run = subprocess.run(
        [sys.executable, "-c", RAY_INIT_WITNESS, "synthesize", "--model", snapshot, "--n", "4", "--workers", "1",
         "--out", str(tmp_path / "out")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.splitlines()[-1])
    assert seen["kwargs"]["address"] == "local" and seen["kwargs"]["include_dashboard"] is False
    assert not seen["webui_url"] and seen["dashboard_answers"] == [False, False]
    # Bound to loopback: the GCS and the raylet answer on 127.0.0.1 and not on the address other
    # hosts would use (Ray's default on Linux listens on every interface, and this fails).
    assert seen["node_ip"] == "127.0.0.1"
    assert seen["loopback_answers"] == {"gcs": True, "raylet": True}
    assert seen["auth_mode"] == "token"  # and a token on top, Ray's default for a new local cluster
    assert verify(str(tmp_path / "out")).ok
    if seen["own_address"].startswith("127."):
        pytest.skip("this machine has no address but loopback to try from")
    assert seen["own_address_answers"] == {"gcs": False, "raylet": False}

