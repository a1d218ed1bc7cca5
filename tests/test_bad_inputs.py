"""Every command's bad input: one `Error:` line naming the input, a non-zero exit, no traceback, nothing written.

The table below is the test. A row is a command line, the input its error must name, what it must
say was wrong, and optionally a function that first writes the bad file the row needs. In a row,
{tmp} is the row's own folder, {out} a fresh output folder in it, {snapshot} a good tiny snapshot and
{synth} a finished synthesis output. A new command or option gets rows here; a command without rows
fails `test_every_command_has_bad_input_rows`.

Guards: gen_aug/cli.py, gen_aug/synthesis/commands.py, gen_aug/evaluation/commands.py, gen_aug/errors.py,
    gen_aug/atomic.py
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
from gen_aug.output.manifest import JOB_FILE, MANIFEST
from gen_aug.models import build_model
from gen_aug.synthesis.driver import synthesize
from gen_aug.synthesis.options import SynthesisOptions

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


def float_image_with_nan(folder: Path, assets: Assets) -> None:
    for name, value in (("a", np.nan), ("b", 0.5)):
        (folder / "set" / name).mkdir(parents=True)
        Image.fromarray(np.array([[0.0, value]], np.float32)).save(folder / "set" / name / "scan.tif")


def image_folder_all_unreadable(folder: Path, assets: Assets) -> None:
    for name in ("a", "b"):
        (folder / "set" / name).mkdir(parents=True)
        (folder / "set" / name / "0.png").write_bytes(b"not a png")


def unreadable_file_named_with_newline(folder: Path, assets: Assets) -> None:
    image_folder_with_empty_file(folder, assets)
    (folder / "set" / "b" / "empty.png").rename(folder / "set" / "b" / "bad\nname.png")


def split_folders(classes_by_split: dict[str, list[str]]) -> Callable[[Path, Assets], None]:
    """{tmp}/set/<split>/<class>/0.png for each split and class given."""

    def make(folder: Path, assets: Assets) -> None:
        for split, classes in classes_by_split.items():
            for name in classes:
                (folder / "set" / split / name).mkdir(parents=True)
                Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "set" / split / name / "0.png")

    return make


def folder_in_use(folder: Path, assets: Assets) -> None:
    (folder / "used").mkdir()
    (folder / "used" / "old.png").write_bytes(b"")


def truncated_npz(folder: Path, assets: Assets) -> None:
    np.savez(folder / "full.npz", train_images=np.zeros((4, 8, 8), np.uint8), train_labels=np.array([0, 1, 0, 1]))
    (folder / "cut.npz").write_bytes((folder / "full.npz").read_bytes()[:100])
    (folder / "full.npz").unlink()


def npz_with_labels_for_fewer_images(folder: Path, assets: Assets) -> None:
    np.savez(folder / "x.npz", train_images=np.zeros((4, 8, 8), np.uint8), train_labels=np.array([0, 1, 0]))


def npz_with(**arrays) -> Callable[[Path, Assets], None]:
    """{tmp}/x.npz: four 8x8 uint8 images labelled 0, 1, 0, 1, with `arrays` in place of either."""

    def make(folder: Path, assets: Assets) -> None:
        good = {"train_images": np.zeros((4, 8, 8), np.uint8), "train_labels": np.array([0, 1, 0, 1])}
        np.savez(folder / "x.npz", **{**good, **arrays})

    return make


def npz_header_claiming_2_31_images(folder: Path, assets: Assets) -> None:
    """{tmp}/x.npz, a sound zip whose train_images.npy header declares 2**31 images but holds 4."""
    (folder / "arrays").mkdir()
    np.save(folder / "arrays" / "train_images.npy", np.zeros((4, 8, 8), np.uint8))
    np.save(folder / "arrays" / "train_labels.npy", np.array([0, 1, 0, 1]))
    shape, claimed = b"(4, 8, 8), }", b"(2147483648, 8, 8), }"  # the header's padding makes room
    images = folder / "arrays" / "train_images.npy"
    images.write_bytes(images.read_bytes().replace(shape + b" " * (len(claimed) - len(shape)), claimed))
    Path(shutil.make_archive(str(folder / "x"), "zip", folder / "arrays")).rename(folder / "x.npz")
    shutil.rmtree(folder / "arrays")


def idx_header(*dims: int) -> bytes:
    return bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


def idx_pair(images: bytes, labels: bytes = idx_header(4) + bytes([0, 1, 0, 1]), suffix: str = ""):
    """{tmp}/m/t10k-images-idx3-ubyte and -labels-idx1-ubyte (+ suffix) holding exactly these bytes."""

    def make(folder: Path, assets: Assets) -> None:
        (folder / "m").mkdir()
        (folder / "m" / f"t10k-images-idx3-ubyte{suffix}").write_bytes(images)
        (folder / "m" / f"t10k-labels-idx1-ubyte{suffix}").write_bytes(labels)

    return make


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


def snapshot_with_meta(change: Callable[[dict], None]) -> Callable[[Path, Assets], None]:
    """{tmp}/crafted.safetensors: the assets' real weights under metadata edited by hand."""
    return crafted_snapshot(change_meta=change)


def snapshot_with_weights(change: Callable[[dict], None]) -> Callable[[Path, Assets], None]:
    """{tmp}/crafted.safetensors: the assets' snapshot with its weights (name -> tensor) edited by hand."""
    return crafted_snapshot(change_weights=change)


def crafted_snapshot(change_meta=None, change_weights=None) -> Callable[[Path, Assets], None]:
    def make(folder: Path, assets: Assets) -> None:
        from safetensors import safe_open

        with safe_open(str(assets.snapshot), "pt") as opened:
            meta = json.loads(opened.metadata()["genaug"])
            tensors = {name: opened.get_tensor(name) for name in opened.keys()}
        for change, value in ((change_meta, meta), (change_weights, tensors)):
            if change is not None:
                change(value)
        save_file(tensors, folder / "crafted.safetensors", metadata={"genaug": json.dumps(meta)})

    return make


def embedding_row(label: int, value: float) -> Callable[[dict], None]:
    """Set the class embedding of `label` to `value`: 3e38 is finite, yet the generator's sums overflow into NaN."""
    return lambda tensors: tensors["net.embed.weight"][label].fill_(value)


def interrupted(out: Path) -> None:
    """As a job leaves its output when stopped before the end: its state, no manifest."""
    (out / MANIFEST).unlink()
    (out / JOB_FILE).parent.mkdir(exist_ok=True)
    (out / JOB_FILE).write_text("{}")


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


def every_record_garbage_and_a_foreign_file(out: Path) -> None:
    garbage_job_state(out)
    (out / MANIFEST).write_text("{")
    (out / "notes.txt").write_text("the user's")


def image_folder(folder: Path, assets: Assets) -> None:
    """{tmp}/set: one 8x8 gray image of each of the snapshot's classes."""
    for name in NAMES:
        (folder / "set" / name).mkdir(parents=True)
        Image.fromarray(np.full((8, 8), 40 * len(name), np.uint8)).save(folder / "set" / name / "0.png")


def cdm_and_image_folder(folder: Path, assets: Assets) -> None:
    """{tmp}/cdm.safetensors, a tiny cdm of the snapshot's classes, and the image folder {tmp}/set."""
    model = build_model("cdm", {"resolution": 8, "channels": 1, "num_classes": 3, "width": 4, "steps": 2})
    save_snapshot(folder / "cdm.safetensors", model, {"class_names": NAMES})
    image_folder(folder, assets)


def digit_variants(folder: Path, assets: Assets) -> None:
    """{tmp}/var: 2 variants of each of builtin:digits?limit_per_class=2, from a tiny untrained cdm."""
    names = [str(digit) for digit in range(10)]
    model = build_model("cdm", {"resolution": 8, "channels": 1, "num_classes": 10, "width": 4, "steps": 2})
    save_snapshot(folder / "digits-cdm.safetensors", model, {"class_names": names})
    synthesize(SynthesisOptions(str(folder / "digits-cdm.safetensors"), str(folder / "var"), n=None, per_image=2,
                                variants_of="builtin:digits?limit_per_class=2", workers=1, progress=False))


def a_file(folder: Path, assets: Assets) -> None:
    (folder / "a-file").write_text("not a folder")


def a_folder_named_grid_png(folder: Path, assets: Assets) -> None:
    (folder / "grid.png").mkdir()


def without_cuda(folder: Path, assets: Assets) -> None:
    """The CUDA rows check the message shown where no GPU is: where one is, the command would just run."""
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible here")


SYNTH = "synthesize --model {snapshot} --out {out}"
TRAIN = "train --data builtin:digits?limit_per_class=2 --steps 1 --out {out}"
SAMPLE = "sample --model {snapshot} --out {tmp}/grid.png"
EVALUATE = "evaluate --real builtin:digits --report {tmp}/report"

BAD_INPUTS = [
    # data
    Bad("data folder:{tmp}/set", "empty.png", "is not a readable image", image_folder_with_empty_file),
    Bad("data npz:{tmp}/cut.npz", "cut.npz", "not a readable .npz file", truncated_npz),
    Bad("data npz:{tmp}/x.npz", "x.npz", "train_labels has 3 entries for 4 images", npz_with_labels_for_fewer_images),
    Bad("data npz:{tmp}/x.npz", "npz:{tmp}/x.npz: 'train_images'", "is an array of object (expected plain numbers",
        npz_with(train_images=np.array([object()] * 4, dtype=object))),
    Bad("data npz:{tmp}/x.npz", "npz:{tmp}/x.npz: 'train_labels'", "is an array of object",
        npz_with(train_labels=np.array([0, 1, None, 1], dtype=object))),
    Bad("data npz:{tmp}/t.npz", "npz:{tmp}/t.npz", "not a readable .npz file (BadZipFile", write("t.npz", "hello")),
    Bad("data npz:{tmp}/x.npz", "npz:{tmp}/x.npz", "train_images is float64 (expected uint8; genaug neither clips",
        npz_with(train_images=np.zeros((4, 8, 8)))),
    Bad("data npz:{tmp}/x.npz", "npz:{tmp}/x.npz", "train_images is int64 (expected uint8",
        npz_with(train_images=np.full((4, 8, 8), 300))),
    Bad("data npz:{tmp}/x.npz", "npz:{tmp}/x.npz", "train_images has shape (4, 64) (expected N x H x W or N x H x W",
        npz_with(train_images=np.zeros((4, 64), np.uint8))),
    Bad("data npz:{tmp}/x.npz", "npz:{tmp}/x.npz", "train_labels holds label -1 (expected class indices 0 to K-1",
        npz_with(train_labels=np.array([0, -1, 0, 1]))),
    Bad("data npz:{tmp}/x.npz", "npz:{tmp}/x.npz", "train_labels is float64 (4,) (expected integer class indices",
        npz_with(train_labels=np.array([0.0, 1.0, 0.0, 1.0]))),
    Bad("data npz:{tmp}/x.npz", "npz:{tmp}/x.npz", "train_labels holds label 1099511627776",
        npz_with(train_labels=np.array([0, 2**40, 0, 1]))),
    Bad("data npz:{tmp}/x.npz", "npz:{tmp}/x.npz: 'train_images'", "declares uint8 (2147483648, 8, 8)",
        npz_header_claiming_2_31_images),
    Bad("data idx:{tmp}/m", "'t10k-images-idx3-ubyte'", "is truncated: the header declares 2147483648 x 28 x 28",
        idx_pair(idx_header(2**31, 28, 28) + bytes(84))),
    Bad("data idx:{tmp}/m", "'t10k-images-idx3-ubyte'", "the header declares 4294967295 x 4294967295 x 4294967295",
        idx_pair(idx_header(2**32 - 1, 2**32 - 1, 2**32 - 1))),
    Bad("data idx:{tmp}/m", "'t10k-images-idx3-ubyte'", "declares sizes (0, 28, 28) (expected 1 or more of each)",
        idx_pair(idx_header(0, 28, 28), idx_header(0))),
    Bad("data idx:{tmp}/m", "'t10k-images-idx3-ubyte'", "starts with 00 00 08 01 (expected an IDX file of uint8 with 3",
        idx_pair(idx_header(4) + bytes(4))),
    Bad("data idx:{tmp}/m", "'t10k-images-idx3-ubyte'", "is truncated: the header declares 4 x 2 x 2, 16 bytes, and 15",
        idx_pair(idx_header(4, 2, 2) + bytes(15))),
    Bad("data idx:{tmp}/m", "'t10k-images-idx3-ubyte' has 5 images but 't10k-labels-idx1-ubyte'", "has 4 labels",
        idx_pair(idx_header(5, 2, 2) + bytes(20))),
    Bad("data idx:{tmp}/m", "'t10k-images-idx3-ubyte.gz'", "Not a gzipped file",
        idx_pair(idx_header(4, 2, 2) + bytes(16), suffix=".gz")),
    Bad("data idx:{tmp}/a-file", "idx:{tmp}/a-file", "not a folder", a_file),
    Bad("data builtin:digits?limit_per_class=0", "limit_per_class='0'", "expected a positive whole number"),
    Bad("data builtin:digits?resolution=4096", "resolution=4096", "expected 4 to 1024"),
    Bad("data folder:{tmp}/set", "'a/scan.tif'", "(NaN or infinite values)", float_image_with_nan),
    Bad("data folder:{tmp}/set", "folder:{tmp}/set", "2 of 2 files are not readable images", image_folder_all_unreadable),
    Bad("data folder:{tmp}/set", "'b/bad\\nname.png'", "is not a readable image", unreadable_file_named_with_newline),
    Bad("data folder:{tmp}/set", "test/ lacks 'owl'", "different class folders",
        split_folders({"train": ["cat", "dog", "owl"], "test": ["cat", "dog"]})),
    Bad("data folder:{tmp}/set?split=val", "split 'val'", "does not exist (this set has train, test)",
        split_folders({"train": ["cat", "dog"], "test": ["cat", "dog"]})),
    Bad("data builtin:digits --export-split {tmp}/used", "--export-split '{tmp}/used'", "folder exists and is not empty",
        folder_in_use),
    Bad("data folder:{tmp}/set?intensity=bright", "intensity='bright'", "(expected set, image or full)"),
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
    Bad(f"{TRAIN} --model gan", "model 'gan'", "choose from cdm, cgan, cvae"),
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
    Bad(f"{SYNTH} --n 1e9 --shard-size 1", "--shard-size 1", "1,000,000,000 shards"),
    Bad(f"{SYNTH} --n 1e9 --shard-size 100000000", "--shard-size 100000000", "GiB of pixels per shard"),
    Bad("synthesize --model {tmp}/crafted.safetensors --out {out} --n 30", "snapshot {tmp}/crafted.safetensors",
        "do not fit", snapshot_with_meta(lambda meta: meta["config"].update(width=4000))),
    Bad("synthesize --model {tmp}/crafted.safetensors --out {out} --n 30", "snapshot {tmp}/crafted.safetensors",
        "for 3 classes (expected one name per class)",
        snapshot_with_meta(lambda meta: meta.update(class_names=[str(i) for i in range(20)]))),
    Bad("synthesize --model {tmp}/crafted.safetensors --out {out} --n 30", "snapshot {tmp}/crafted.safetensors",
        "class name 'cat' is given twice", snapshot_with_meta(lambda meta: meta.update(class_names=["cat"] * 3))),
    Bad("synthesize --model {tmp}/crafted.safetensors --out {out} --n 30", "snapshot {tmp}/crafted.safetensors",
        "(expected 1 to 4096)", snapshot_with_meta(lambda meta: meta["config"].update(width=10**30))),
    Bad("synthesize --model {tmp}/crafted.safetensors --out {out} --n 30", "snapshot {tmp}/crafted.safetensors",
        "weight net.embed.weight holds NaN or infinite values", snapshot_with_weights(embedding_row(1, float("nan")))),
    Bad("synthesize --model {tmp}/crafted.safetensors --out {out} --n 30", "snapshot {tmp}/crafted.safetensors",
        "lr_g = inf (expected a finite number)", snapshot_with_meta(lambda meta: meta["config"].update(lr_g=1e999))),
    # NaN from every class: found in the sample the size estimate draws, before Ray starts
    Bad("synthesize --model {tmp}/crafted.safetensors --out {out} --n 30", "--model '{tmp}/crafted.safetensors'",
        "generated NaN or infinite pixels for images 0 to", snapshot_with_weights(embedding_row(slice(None), 3e38))),
    Bad(f"{SYNTH} --n 30 --seed 9223372036854775808", "--seed", "not in the range 0<=x<=9223372036854775807"),
    Bad(f"{SYNTH} --per-class cat=x", "--per-class cat 'x'", "not a number"),
    Bad(f"{SYNTH} --n 30 --worker-start-timeout 0", "--worker-start-timeout", "not in the range 1<=x<=604800"),
    Bad(f"{SYNTH} --n 30 --class-weights cat=-1", "--class-weights 'cat=-1'", "expected a number >= 0"),
    Bad(f"{SYNTH} --n 30 --mix-classes", "--mix-classes without --variants-of", "(expected --variants-of SPEC"),
    Bad("synthesize --model {snapshot} --variants-of folder:{tmp}/set --out {out}", "--model '{snapshot}'",
        "a cgan snapshot cannot make variants of real images (expected a cdm or cvae snapshot", image_folder),
    Bad("synthesize --model {tmp}/cdm.safetensors --variants-of folder:{tmp}/set --per-class 3 --out {out}",
        "--variants-of and --per-class", "both given", cdm_and_image_folder),
    Bad("synthesize --model {tmp}/cdm.safetensors --variants-of folder:{tmp}/set --n 7 --out {out}",
        "--n 7 and --variants-of", "disagree (3 source images x 10 make 30", cdm_and_image_folder),
    Bad("synthesize --model {tmp}/cdm.safetensors --variants-of builtin:digits --out {out}",
        "--variants-of 'builtin:digits'", "(expected the snapshot's classes cat, dog, owl", cdm_and_image_folder),
    Bad("synthesize --model {tmp}/cdm.safetensors --variants-of folder:{tmp}/set --strength 0.5,1.5 --out {out}",
        "--strength 1.5", "out of range (expected a strength from 0 to 1)", cdm_and_image_folder),
    Bad("synthesize --model {snapshot} --n 30 --out s3x://bucket/dir", "--out 's3x://bucket/dir'", "cannot open"),
    Bad(f"{SYNTH} --n 30 --shard-size 10 --resume", f"{{out}}/{JOB_FILE}", "unreadable",
        synth_copy(every_record_garbage_and_a_foreign_file)),
    Bad(f"{SYNTH} --n 30 --shard-size 10 --overwrite", f"{{out}}/{JOB_FILE}", "unreadable",
        synth_copy(every_record_garbage_and_a_foreign_file)),
    Bad(f"{SYNTH} --n 40 --shard-size 10 --workers 1 --resume", "--resume '{out}'", "the job there had other plan",
        synth_copy(lambda out: None)),
    # verify: missing outputs and manifests edited by hand
    Bad("verify {tmp}/none", "verify '{tmp}/none'", "no _manifest.json"),
    Bad("verify {out}", "verify '{out}'", "interrupted before its _manifest.json was written (expected a finished "
        "output: rerun the same genaug synthesize with --resume", synth_copy(interrupted)),
    Bad("verify {tmp}/a-file", "'{tmp}/a-file'", "is a file", a_file),
    Bad("verify {out}", f"{{out}}/{MANIFEST}", "unreadable", synth_copy(lambda out: (out / MANIFEST).write_text("{"))),
    Bad("verify {out}", f"{{out}}/{MANIFEST}", "not a JSON object", synth_copy(manifest_edit(lambda m: [m]))),
    Bad("verify {out}", f"{{out}}/{MANIFEST}", "shards = 5", synth_copy(manifest_edit(lambda m: m.update(shards=5)))),
    Bad("verify {out}", f"{{out}}/{MANIFEST}", "expected at most 1,000,000,000 images, 100,000 shards",
        synth_copy(manifest_edit(lambda m: m["plan"].update(shard_size=1, class_counts=[10**12] * 3, n=3 * 10**12)))),
    Bad("verify {out}", f"{{out}}/{MANIFEST}", "shard_size 0",
        synth_copy(manifest_edit(lambda m: m["plan"].update(shard_size=0)))),
    Bad("verify {out}", f"{{out}}/{MANIFEST}", "not a genaug plan", synth_copy(manifest_edit(lambda m: m.update(plan=[1])))),
    Bad("verify {out}", f"{{out}}/{MANIFEST}", "format 'zip'", synth_copy(manifest_edit(lambda m: m.update(format="zip")))),
    Bad("verify {out}", f"{{out}}/{MANIFEST}", "layout 'zip' (expected one of hub, flat)",
        synth_copy(manifest_edit(lambda m: m["plan"].update(layout="zip")))),
    Bad(f"{SYNTH} --n 30 --overwrite", f"{{out}}/{MANIFEST}", "unreadable",
        synth_copy(lambda out: ((out / "README.md").write_text("# mine\n"), (out / MANIFEST).write_text("{")))),
    Bad("synthesize --model {snapshot} --n 30 --out s3://bucket/x?endpoint_override=127.0.0.1:9&scheme=http",
        "--out 's3://bucket/x?endpoint_override=127.0.0.1:9&scheme=http'", "cannot reach it"),
    # evaluate
    Bad(f"{EVALUATE} --synthetic {{tmp}}/none", "{tmp}/none", "no _manifest.json"),
    Bad(f"{EVALUATE} --synthetic {{synth}}", f"{{synth}}/{MANIFEST}", "classes cat, dog, owl (expected the real data's"),
    Bad(f"{EVALUATE} --synthetic {{synth}} --seeds 1,x", "'--seeds'", "'1,x' (expected whole numbers >= 0"),
    Bad(f"{EVALUATE} --synthetic {{synth}} --steps 0", "'--steps'", "0 is not in the range x>=1"),
    Bad(f"{EVALUATE} --synthetic {{synth}} --mix-ratio -1", "'--mix-ratio'", "-1.0 is not in the range x>=0"),
    Bad(f"{EVALUATE} --synthetic {{synth}} --real-share 1", "'--real-share'", "1.0 is not in the range 0<x<1"),
    Bad("evaluate --real nope:x --synthetic {synth} --report {tmp}/report", "nope", "unknown kind 'nope'"),
    Bad(f"{EVALUATE} --synthetic {{tmp}}/var --arms real,variants", "--synthetic '{tmp}/var'",
        "variants of builtin:digits?split=train&limit_per_class=2, sha256", digit_variants),
    Bad(f"{EVALUATE} --synthetic {{synth}} --arms real,distill", "arms = ['real', 'distill']",
        "(expected 'classical' among them: distill's teacher)"),
    Bad(f"{EVALUATE} --synthetic {{synth}} --tune x", "'--tune'", "'x' (expected SETTING=V,V,..."),
    Bad(f"{EVALUATE} --synthetic {{synth}} --tune steps=10", "tune = 'steps'", "(expected settings among"),
    Bad(f"{EVALUATE} --synthetic {{synth}} --tune strength=0.5", "tune strength", "a synthesis setting, with 1 "
        "output(s) to compare and 0 given (expected genaug run"),
    Bad(f"{EVALUATE} --synthetic {{synth}} --tune mix_ratio=1,1", "tune mix_ratio = [1.0, 1.0]", "each once"),
    Bad(f"{EVALUATE} --synthetic {{synth}} --tune mix_ratio=1,2 --validation builtin:digits?split=test",
        "--validation 'builtin:digits?split=test'", "a test split (expected a val split"),
    Bad(f"{EVALUATE} --synthetic {{synth}} --tune mix_ratio=1,2", "tune: data builtin:digits", "split 'val' does not "
        "exist (sets without their own splits have train and test, by rank in class % 5 == 4); expected --validation"),
    Bad(f"{EVALUATE} --synthetic {{synth}} --swap-probability 2", "'--swap-probability'", "2.0 is not in the range"),
    Bad(f"{EVALUATE} --synthetic {{synth}} --test builtin:digits?split=test&resolution=16",
        "--test 'builtin:digits?split=test&resolution=16'", "images of 1x16x16 (expected --real's train split's 1x8x8"),
    Bad(f"{EVALUATE} --synthetic {{out}}", "'../outside.parquet'", "escapes the output folder",
        synth_copy(manifest_edit(lambda m: m["shards"][0].update(file="../outside.parquet")))),
    # run: the job file's synthesize and evaluate sections
    Bad("run {tmp}/none.toml", "job {tmp}/none.toml", "no such file"),
    Bad("run {tmp}/job.toml", "job {tmp}/job.toml [synthesize]", "n = 0 (expected 1 or more)",
        write("job.toml", '[train]\nout = "{tmp}/run"\n[synthesize]\nn = 0\n')),
    Bad("run {tmp}/job.toml", "job {tmp}/job.toml [synthesize]", "format = 'jpeg' (expected 'parquet' or 'png'",
        write("job.toml", '[train]\nout = "{tmp}/run"\n[synthesize]\nformat = "jpeg"\n')),
    Bad("run {tmp}/job.toml", "job {tmp}/job.toml [synthesize]",
        "worker_start_timeout_s = inf (expected 1 to 604,800 seconds)",
        write("job.toml", '[train]\nout = "{tmp}/run"\n[synthesize]\nworker_start_timeout_s = inf\n')),
    Bad("run {tmp}/job.toml", "job {tmp}/job.toml [evaluate]", "unknown key 'mixing'",
        write("job.toml", '[train]\nout = "{tmp}/run"\n[evaluate]\nmixing = 2\n')),
    Bad("run {tmp}/job.toml", "job {tmp}/job.toml [evaluate]", "seeds = ['a']: item 'a' (expected a whole number)",
        write("job.toml", '[train]\nout = "{tmp}/run"\n[evaluate]\nseeds = ["a"]\n')),
    Bad("run {tmp}/job.toml", "job {tmp}/job.toml [evaluate]", "real_share = 2.0 (expected a fraction between 0 and 1)",
        write("job.toml", '[train]\nout = "{tmp}/run"\n[evaluate]\nreal_share = 2\n')),
    Bad("run {tmp}/job.toml", "job {tmp}/job.toml [evaluate]", "unknown key 'synthetic'",
        write("job.toml", '[train]\nout = "{tmp}/run"\n[evaluate]\nsynthetic = "x"\n')),
    # bench
    Bad("bench --n abc", "--n 'abc'", "not a number"),
    Bad("bench --resolution 4", "'--resolution'", "4 is not in the range 8<=x<=256"),
    Bad("bench --format jpeg", "'--format'", "'jpeg' is not one of"),
    Bad("bench --workers 1 --gpus 1", "--workers", "not both"),
    Bad("bench --repeats 0", "'--repeats'", "0 is not in the range 1<=x<=20"),
    # CUDA asked for where none is visible (synthesize --gpus: tests/test_watch.py, as this Ray declares 2 GPUs)
    Bad(f"{TRAIN} --device cuda", "--device cuda", "no CUDA device is visible", without_cuda),
    Bad("bench --gpus 1 --n 100", "--gpus 1", "no CUDA device", without_cuda),
    Bad(f"{EVALUATE} --synthetic {{synth}} --device cuda", "--device cuda", "no CUDA device is visible", without_cuda),
    Bad("run {tmp}/job.toml", "--device cuda", "no CUDA device is visible",
        lambda folder, assets: (without_cuda(folder, assets), write(
            "job.toml", '[train]\nout = "{tmp}/run"\nsteps = 2\ndevice = "cuda"\n')(folder, assets))),
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
