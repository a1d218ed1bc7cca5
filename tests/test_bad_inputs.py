"""Every command's bad input: one `Error:` line naming the input, a non-zero exit, no traceback, nothing written.

The table below is the test. A row is a command line, the input its error must name, what it must
say was wrong, and optionally a function that first writes the bad file the row needs. In a row,
{tmp} is the row's own folder, {out} a fresh output folder in it, {snapshot} a good tiny snapshot and
{synth} a finished synthesis output. A new command or option gets rows here; a command without rows
fails `test_every_command_has_bad_input_rows`.
"""

import json
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import save_file

from gen_aug.checkpoint import save_snapshot
from gen_aug.cli import main
from gen_aug.synthesis.manifest import JOB_FILE, MANIFEST
from gen_aug.models import build_model
from gen_aug.synthesis.driver import SynthesisOptions, synthesize

pytestmark = pytest.mark.ray

NAMES = ["cat", "dog", "owl"]


@dataclass(frozen=True)
class Assets:
    snapshot: Path
    synth: Path  # a finished parquet synthesis: 30 images, 3 shards, seed 0, from `snapshot`


@dataclass(frozen=True)
class Bad:
    line: str  # the arguments after `genaug`
    names: str  # the input the one error line must name
    why: str  # what it must say was wrong
    make: Callable[[Path, Assets], None] | None = None  # writes the row's bad files under {tmp}

    @property
    def command(self) -> str:
        return self.line.split()[0]


def write(relative: str, content: str | bytes) -> Callable[[Path, Assets], None]:
    def make(folder: Path, assets: Assets) -> None:
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.replace("{tmp}", str(folder)).encode() if isinstance(content, str) else content)

    return make


def image_folder_with_empty_file(folder: Path, assets: Assets) -> None:
    for name in ("a", "b"):
        (folder / "set" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "set" / name / "0.png")
    (folder / "set" / "b" / "empty.png").write_bytes(b"")


def truncated_npz(folder: Path, assets: Assets) -> None:
    np.savez(folder / "full.npz", train_images=np.zeros((4, 8, 8), np.uint8), train_labels=np.array([0, 1, 0, 1]))
    (folder / "cut.npz").write_bytes((folder / "full.npz").read_bytes()[:100])
    (folder / "full.npz").unlink()


def npz_with_labels_for_fewer_images(folder: Path, assets: Assets) -> None:
    np.savez(folder / "x.npz", train_images=np.zeros((4, 8, 8), np.uint8), train_labels=np.array([0, 1, 0]))


def run_with_state(state: Callable[[Path], None]) -> Callable[[Path, Assets], None]:
    """A run folder whose train_state.pt is written by `state`: what `genaug train --resume` reads first."""

    def make(folder: Path, assets: Assets) -> None:
        (folder / "run").mkdir()
        state(folder / "run" / "train_state.pt")

    return make


def truncated_state(path: Path) -> None:
    torch.save({"format_version": 1, "step": 3, "rng": torch.zeros(100, dtype=torch.uint8)}, path)
    path.write_bytes(path.read_bytes()[:200])


def foreign_state(path: Path) -> None:
    torch.save({"epoch": 3, "weights": torch.zeros(4)}, path)  # another program's checkpoint


def torch_checkpoint_as_snapshot(folder: Path, assets: Assets) -> None:
    model = build_model("cgan", {"resolution": 8, "channels": 1, "num_classes": 3, "z_dim": 8, "width": 4})
    torch.save(model.state_dict(), folder / "torch.safetensors")


def foreign_safetensors(folder: Path, assets: Assets) -> None:
    save_file({"weight": torch.zeros(2, 2)}, folder / "other.safetensors")


def cut_snapshot(folder: Path, assets: Assets) -> None:
    (folder / "cut.safetensors").write_bytes(assets.snapshot.read_bytes()[:20])


def synth_copy(edit: Callable[[Path], None]) -> Callable[[Path, Assets], None]:
    """{out} as a copy of the finished synthesis, then edited by hand."""

    def make(folder: Path, assets: Assets) -> None:
        shutil.copytree(assets.synth, folder / "out")
        edit(folder / "out")

    return make


def manifest_edit(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def edit(out: Path) -> None:
        manifest = json.loads((out / MANIFEST).read_text())
        replaced = change(manifest)
        (out / MANIFEST).write_text(json.dumps(manifest if replaced is None else replaced))

    return edit


def garbage_job_state(out: Path) -> None:
    (out / JOB_FILE).parent.mkdir()
    (out / JOB_FILE).write_text('{"plan": ')  # cut short by a crash, or edited by hand


def a_file(folder: Path, assets: Assets) -> None:
    (folder / "a-file").write_text("not a folder")


def a_folder_named_grid_png(folder: Path, assets: Assets) -> None:
    (folder / "grid.png").mkdir()


SYNTH = "synthesize --model {snapshot} --out {out}"
TRAIN = "train --data builtin:digits?limit_per_class=2 --steps 1 --out {out}"
SAMPLE = "sample --model {snapshot} --out {tmp}/grid.png"
EVALUATE = "evaluate --real builtin:digits --report {tmp}/report"

BAD_INPUTS = [
    # data
    Bad("data folder:{tmp}/set", "empty.png", "is not a readable image", image_folder_with_empty_file),
    Bad("data npz:{tmp}/cut.npz", "cut.npz", "not a readable .npz file", truncated_npz),
    Bad("data npz:{tmp}/x.npz", "x.npz", "train_labels has 3 entries for 4 images", npz_with_labels_for_fewer_images),
    Bad("data idx:{tmp}/a-file", "idx:{tmp}/a-file", "not a folder", a_file),
    Bad("data builtin:digits?limit_per_class=0", "limit_per_class='0'", "expected a positive whole number"),
    Bad("data builtin:digits?resolution=4096", "resolution=4096", "expected 4 to 1024"),
    # train: job files, options, resume state
    Bad("train --job {tmp}/job.toml", "job {tmp}/job.toml [train]", "unknown key 'stpes'",
        write("job.toml", "[train]\nstpes = 3\n")),
    Bad("train --job {tmp}/job.toml", "batch_size = '8'", "(expected a whole number)",
        write("job.toml", '[train]\nbatch_size = "8"\n')),
    Bad("train --job {tmp}/job.toml", "job {tmp}/job.toml [model] (cgan)", "unknown key 'depth'",
        write("job.toml", '[model]\nfamily = "cgan"\ndepth = 3\n')),
    Bad("train --job {tmp}/job.toml", "job {tmp}/job.toml", "unknown section [sample]",
        write("job.toml", "[sample]\nper_class = 3\n")),
    Bad("train --job {tmp}/job.toml", "job {tmp}/job.toml", "not valid TOML", write("job.toml", b"\x89PNG\r\n\x1a\n")),
    Bad("train --job {tmp}/none.toml", "job {tmp}/none.toml", "no such file"),
    Bad(f"{TRAIN} --steps many", "'--steps'", "'many' is not a valid integer"),
    Bad(f"{TRAIN} --batch-size 0", "'--batch-size'", "0 is not in the range x>=1"),
    Bad(f"{TRAIN} --device tpu", "'--device'", "'tpu' is not one of"),
    Bad(f"{TRAIN} --model gan", "model 'gan'", "choose from cgan, cvae"),
    Bad("train --data builtin:digits?limit_per_class=2 --steps 1 --out {tmp}/a-file", "--out {tmp}/a-file",
        "is a file", a_file),
    Bad("train --data builtin:digits?limit_per_class=2 --steps 2 --out {tmp}/run --resume", "{tmp}/run/train_state.pt",
        "not a readable genaug train state", run_with_state(truncated_state)),
    Bad("train --data builtin:digits?limit_per_class=2 --steps 2 --out {tmp}/run --resume", "{tmp}/run/train_state.pt",
        "not a genaug train state", run_with_state(foreign_state)),
    Bad("train --data npz:{tmp}/none.npz --steps 1 --out {out}", "npz:{tmp}/none.npz", "no such file"),
    # sample: snapshots and the grid file
    Bad("sample --model {tmp}/none.safetensors --out {tmp}/grid.png", "{tmp}/none.safetensors", "no such file"),
    Bad("sample --model {tmp}/torch.safetensors --out {tmp}/grid.png", "{tmp}/torch.safetensors",
        "not a safetensors file", torch_checkpoint_as_snapshot),
    Bad("sample --model {tmp}/other.safetensors --out {tmp}/grid.png", "{tmp}/other.safetensors",
        "not a genaug snapshot", foreign_safetensors),
    Bad("sample --model {tmp}/cut.safetensors --out {tmp}/grid.png", "{tmp}/cut.safetensors", "truncated",
        cut_snapshot),
    Bad(f"{SAMPLE} --per-class 0", "'--per-class'", "0 is not in the range 1<=x<=100"),
    Bad("sample --model {snapshot} --out {tmp}/grid.jpg", "--out {tmp}/grid.jpg", "not a .png file name"),
    Bad("sample --model {snapshot} --out {tmp}/a-file/grid.png", "{tmp}/a-file/grid.png", "cannot write", a_file),
    Bad(SAMPLE, "{tmp}/grid.png", "is a folder", a_folder_named_grid_png),
    Bad("sample --out {tmp}/grid.png", "'--model'", "Missing option"),
    # synthesize: counts, classes, formats, addresses, and outputs edited by hand before --resume
    Bad(f"{SYNTH} --n 1e10", "--n '1e10'", "out of range"),
    Bad(f"{SYNTH} --n 12abc", "--n '12abc'", "not a number"),
    Bad(f"{SYNTH} --n 30 --shard-size 0", "'--shard-size'", "0 is not in the range x>=1"),
    Bad(f"{SYNTH} --n 30 --format jpeg", "'--format'", "'jpeg' is not one of"),
    Bad("synthesize --model {tmp}/torch.safetensors --n 30 --out {out}", "{tmp}/torch.safetensors",
        "not a safetensors file", torch_checkpoint_as_snapshot),
    Bad(f"{SYNTH} --n 30 --encode-processes -1", "'--encode-processes'", "-1 is not in the range x>=0"),
    Bad(f"{SYNTH} --n 30 --address nohost", "--address 'nohost'", "not HOST:PORT"),
    Bad(f"{SYNTH} --per-class cat=x", "--per-class cat 'x'", "not a number"),
    Bad(f"{SYNTH} --n 30 --class-weights cat=-1", "--class-weights 'cat=-1'", "expected a number >= 0"),
    Bad("synthesize --model {snapshot} --n 30 --out s3x://bucket/dir", "--out 's3x://bucket/dir'", "cannot open"),
    Bad(f"{SYNTH} --n 30 --shard-size 10 --resume", f"{{out}}/{JOB_FILE}", "unreadable",
        synth_copy(garbage_job_state)),
    Bad(f"{SYNTH} --n 30 --shard-size 10 --resume", f"{{out}}/{MANIFEST}", "shards = 5",
        synth_copy(manifest_edit(lambda m: m.update(shards=5)))),
    Bad(f"{SYNTH} --n 40 --shard-size 10 --resume", "--resume '{out}'", "the job there had other plan",
        synth_copy(lambda out: None)),
    # verify: missing outputs and manifests edited by hand
    Bad("verify {tmp}/none", "verify '{tmp}/none'", "no manifest.json"),
    Bad("verify {tmp}/a-file", "'{tmp}/a-file'", "is a file", a_file),
    Bad("verify {out}", f"{{out}}/{MANIFEST}", "unreadable", synth_copy(lambda out: (out / MANIFEST).write_text("{"))),
    Bad("verify {out}", f"{{out}}/{MANIFEST}", "not a JSON object", synth_copy(manifest_edit(lambda m: [m]))),
    Bad("verify {out}", f"{{out}}/{MANIFEST}", "shards = 5", synth_copy(manifest_edit(lambda m: m.update(shards=5)))),
    Bad("verify {out}", f"{{out}}/{MANIFEST}", "shard_size 0",
        synth_copy(manifest_edit(lambda m: m["plan"].update(shard_size=0)))),
    Bad("verify {out}", f"{{out}}/{MANIFEST}", "not a genaug plan", synth_copy(manifest_edit(lambda m: m.update(plan=[1])))),
    Bad("verify {out}", f"{{out}}/{MANIFEST}", "format 'zip'", synth_copy(manifest_edit(lambda m: m.update(format="zip")))),
    # evaluate
    Bad(f"{EVALUATE} --synthetic {{tmp}}/none", "{tmp}/none", "no manifest.json"),
    Bad(f"{EVALUATE} --synthetic {{synth}}", f"{{synth}}/{MANIFEST}", "classes cat, dog, owl (expected the real data's"),
    Bad(f"{EVALUATE} --synthetic {{synth}} --seeds 1,x", "'--seeds'", "'1,x' (expected whole numbers >= 0"),
    Bad(f"{EVALUATE} --synthetic {{synth}} --steps 0", "'--steps'", "0 is not in the range x>=1"),
    Bad(f"{EVALUATE} --synthetic {{synth}} --mix-ratio -1", "'--mix-ratio'", "-1.0 is not in the range x>=0"),
    Bad(f"{EVALUATE} --synthetic {{synth}} --real-share 1", "'--real-share'", "1.0 is not in the range 0<x<1"),
    Bad("evaluate --real nope:x --synthetic {synth} --report {tmp}/report", "nope", "unknown kind 'nope'"),
    Bad(f"{EVALUATE} --synthetic {{out}}", "'../outside.parquet'", "escapes the output folder",
        synth_copy(manifest_edit(lambda m: m["shards"][0].update(file="../outside.parquet")))),
    # run: the job file's synthesize and evaluate sections
    Bad("run {tmp}/none.toml", "job {tmp}/none.toml", "no such file"),
    Bad("run {tmp}/job.toml", "job {tmp}/job.toml [synthesize]", "n = 0 (expected 1 or more)",
        write("job.toml", '[train]\nout = "{tmp}/run"\n[synthesize]\nn = 0\n')),
    Bad("run {tmp}/job.toml", "job {tmp}/job.toml [synthesize]", "format = 'jpeg' (expected 'parquet' or 'png'",
        write("job.toml", '[train]\nout = "{tmp}/run"\n[synthesize]\nformat = "jpeg"\n')),
    Bad("run {tmp}/job.toml", "job {tmp}/job.toml [evaluate]", "unknown key 'mix'",
        write("job.toml", '[train]\nout = "{tmp}/run"\n[evaluate]\nmix = 2\n')),
    Bad("run {tmp}/job.toml", "job {tmp}/job.toml [evaluate]", "seeds = ['a']: item 'a' (expected a whole number)",
        write("job.toml", '[train]\nout = "{tmp}/run"\n[evaluate]\nseeds = ["a"]\n')),
    Bad("run {tmp}/job.toml", "job {tmp}/job.toml [evaluate]", "real_share = 2.0 (expected a fraction between 0 and 1)",
        write("job.toml", '[train]\nout = "{tmp}/run"\n[evaluate]\nreal_share = 2\n')),
    # bench
    Bad("bench --n abc", "--n 'abc'", "not a number"),
    Bad("bench --resolution 4", "'--resolution'", "4 is not in the range 8<=x<=64"),
    Bad("bench --format jpeg", "'--format'", "'jpeg' is not one of"),
    Bad("bench --workers 1 --gpus 1", "--workers", "not both"),
    Bad("bench --repeats 0", "'--repeats'", "0 is not in the range 1<=x<=20"),
]


@pytest.fixture(scope="module")
def assets(ray_local, tmp_path_factory) -> Assets:
    folder = tmp_path_factory.mktemp("assets")
    model = build_model("cgan", {"resolution": 8, "channels": 1, "num_classes": 3, "z_dim": 8, "width": 4})
    save_snapshot(folder / "model.safetensors", model, {"class_names": NAMES})
    synthesize(SynthesisOptions(str(folder / "model.safetensors"), str(folder / "synth"), n=30, shard_size=10,
                                workers=1, progress=False))
    return Assets(folder / "model.safetensors", folder / "synth")


def files_below(folder: Path) -> dict[str, bytes | None]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=[f"{i:02d}-{bad.command}" for i, bad in enumerate(BAD_INPUTS)])
def test_bad_input_is_one_error_line_and_writes_nothing(bad, assets, tmp_path):
    if bad.make is not None:
        bad.make(tmp_path, assets)
    before = files_below(tmp_path)
    fields = {"tmp": tmp_path, "out": tmp_path / "out", "snapshot": assets.snapshot, "synth": assets.synth}
    result = CliRunner().invoke(main, shlex.split(bad.line.format(**fields)), prog_name="genaug")
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), (result.output, result.exception)
    lines = result.output.splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    others = [line for line in lines if line not in errors]
    assert len(errors) == 1 and not others and "Traceback" not in result.output, result.output
    assert bad.names.format(**fields) in errors[0] and bad.why in errors[0], errors[0]
    # Nothing new, nothing changed: no manifest, no done record, no partial file a --resume could trust.
    assert files_below(tmp_path) == before


def test_the_table_has_30_rows_or_more_and_every_command_has_some():
    assert len(BAD_INPUTS) >= 30
    missing = sorted(set(main.commands) - {bad.command for bad in BAD_INPUTS})
    assert not missing, f"commands without bad-input rows in tests/test_bad_inputs.py: {missing}"
