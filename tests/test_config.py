"""Job files: sections become frozen dataclasses; every unknown or mistyped key is an error naming file and key.

Guards: gen_aug/config.py, gen_aug/checks.py
"""

from pathlib import Path

import pytest

from gen_aug.config import Job, ModelSection, TrainConfig, job_with_overrides, load_job
from gen_aug.errors import GenaugError
from gen_aug.evaluation.options import EvaluationOptions
from gen_aug.models import MODELS

JOBS = Path(__file__).resolve().parent.parent / "jobs"


def write(tmp_path, text):
    path = tmp_path / "job.toml"
    path.write_text(text)
    return path


def test_a_full_job_is_read_into_its_sections(tmp_path):
    job = load_job(write(tmp_path, """
[data]
spec = "builtin:digits?limit_per_class=20"
[model]
family = "cvae"
kl_weight = 0.5
width = 8
[train]
out = "runs/x"
steps = 10
"""))
    assert job.data.spec == "builtin:digits?limit_per_class=20"
    assert job.model == ModelSection("cvae", {"kl_weight": 0.5, "width": 8})
    assert job.train == TrainConfig(out="runs/x", steps=10)


def test_sections_left_out_take_the_defaults(tmp_path):
    assert load_job(write(tmp_path, "[train]\nsteps = 5\n")) == Job(train=TrainConfig(steps=5))


@pytest.mark.parametrize("path", sorted(JOBS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_jobs_load(path):
    job = load_job(path)
    assert job.train.out is not None and job.model.family in MODELS


def test_the_digits_job_is_the_embedded_default():
    job = load_job(JOBS / "digits.toml")
    assert job.data == Job().data and job.model == Job().model
    assert job.train == TrainConfig(out=job.train.out)


@pytest.mark.parametrize(
    "text,message",
    [
        ("[tarin]\nsteps = 3\n", r"unknown section \[tarin\] \(expected \[data\], \[model\], \[train\], \[synthesize\], \[evaluate\]\)"),
        ("[train]\nstep = 3\n", r"\[train\]: unknown key 'step' \(expected one of batch_size, .*steps"),
        ("[train]\nsteps = '3'\n", r"\[train\]: steps = '3' \(expected a whole number\)"),
        ("[train]\nsteps = 3.5\n", r"steps = 3.5 \(expected a whole number\)"),
        ("[train]\nsteps = true\n", r"steps = True \(expected a whole number\)"),
        ("[train]\nsteps = 0\n", r"\[train\]: steps = 0 \(expected 1 or more\)"),
        ("[train]\ndevice = 'tpu'\n", r"device = 'tpu' \(expected 'auto' or 'cpu' or 'cuda'\)"),
        ("[model]\nfamily = 'cgn'\n", r"unknown model 'cgn'; choose from cdm, cgan, cvae"),
        ("[model]\nfamily = 'cvae'\nlr_g = 0.1\n", r"\[model\] \(cvae\): unknown key 'lr_g'"),
        ("[model]\nresolution = 32\n", r"resolution comes from the training data"),
        ("[model]\nwidth = 0\n", r"width = 0 \(expected 1 to 4096\)"),
        ("[data]\npath = 'x'\n", r"\[data\]: unknown key 'path' \(expected one of source, spec\)"),
        ("[evaluate]\nsynthetic = 'x'\n", r"\[evaluate\]: unknown key 'synthetic' \(expected one of arms, classifier, "
         r"flip, jobs, k, metric, mix, mix_gamma, mix_ratio, policy, real, real_share, report, sample_size, seeds, steps, "
         r"swap_probability, test, tune, validation\)"),
        ("[evaluate]\ndevice = 'cpu'\n", r"\[evaluate\]: unknown key 'device'"),
        ("[evaluate]\nsample_size = 3\n", r"\[evaluate\]: sample_size = 3 \(expected more than k = 3\)"),
        ("train = 3\n", r"train = 3 \(expected a \[train\] section\)"),
        ("[train\n", r"not valid TOML"),
    ],
)
def test_bad_jobs_are_errors_naming_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(GenaugError, match=message) as error:
        load_job(path)
    assert str(path) in str(error.value)


def test_the_evaluate_section_is_the_evaluation_options_less_what_the_job_gives(tmp_path):
    job = load_job(write(tmp_path, "[evaluate]\nseeds = [4]\nmix_ratio = 2\ntest = 'builtin:digits?split=test'\n"))
    assert job.evaluate == EvaluationOptions(seeds=(4,), mix_ratio=2.0, test="builtin:digits?split=test")
    assert load_job(JOBS / "mnist-scarce.toml").evaluate == EvaluationOptions(
        seeds=(0, 1, 2, 3, 4), steps=3000, mix_ratio=50.0, real_share=0.33
    )


def test_missing_job_file(tmp_path):
    with pytest.raises(GenaugError, match=r"no such file"):
        load_job(tmp_path / "absent.toml")


def test_command_line_overrides_the_job(tmp_path):
    path = write(tmp_path, "[data]\nspec = 'builtin:digits'\n[model]\nwidth = 8\n[train]\nout = 'a'\nsteps = 10\nseed = 4\n")
    job = job_with_overrides(path, "builtin:digits?limit_per_class=5", "cvae", out="b", steps=20, seed=None)
    assert job.data.spec == "builtin:digits?limit_per_class=5"
    assert job.model == ModelSection("cvae", {"width": 8})
    assert (job.train.out, job.train.steps, job.train.seed) == ("b", 20, 4)
    with pytest.raises(GenaugError, match=r"command line: batch_size = 0"):
        job_with_overrides(path, batch_size=0)


VARIANTS_JOB = """
[data]
spec = "npz:${{SCANS:-{default}}}/scans.npz?split=train"
source = "the scans, scans.npz"
[synthesize]
variants_of = "npz:${{SCANS:-{default}}}/scans.npz?split=train"
[train]
out = "runs/x"
"""


def test_job_strings_take_variables_from_the_environment_or_their_default(tmp_path, monkeypatch):
    path = write(tmp_path, VARIANTS_JOB.format(default="data/here"))
    monkeypatch.delenv("SCANS", raising=False)
    assert load_job(path).data.spec == "npz:data/here/scans.npz?split=train"
    monkeypatch.setenv("SCANS", "/mine")
    job = load_job(path)
    assert job.data.spec == job.synthesize.variants_of == "npz:/mine/scans.npz?split=train"
    monkeypatch.delenv("SCANS")
    with pytest.raises(GenaugError, match=r"^job .*: \$\{NOPE\} is not set \(expected it in the environment"):
        load_job(write(tmp_path, '[data]\nspec = "npz:${NOPE}/x.npz"\n'))


def test_set_replaces_keys_and_keys_that_repeated_the_data_spec_follow_it(tmp_path):
    path = write(tmp_path, VARIANTS_JOB.format(default="data"))
    job = load_job(path, ("data.spec=npz:other.npz", "train.steps=500", "evaluate.tune={strength = [0.3, 0.5]}"))
    assert job.data.spec == job.synthesize.variants_of == "npz:other.npz"
    assert job.train.steps == 500 and job.evaluate.tune == {"strength": (0.3, 0.5)}
    job = load_job(path, ("synthesize.variants_of=npz:kept.npz", "data.spec=npz:other.npz"))
    assert (job.data.spec, job.synthesize.variants_of) == ("npz:other.npz", "npz:kept.npz")
    with pytest.raises(GenaugError, match=r"^--set 'steps=5': not SECTION.KEY=VALUE"):
        load_job(path, ("steps=5",))
    with pytest.raises(GenaugError, match=r"^job .*\[train\]: unknown key 'stepz'"):
        load_job(path, ("train.stepz=5",))


def test_a_missing_data_file_is_one_line_that_says_what_to_fetch_and_how_to_point_at_it(tmp_path):
    from click.testing import CliRunner

    from gen_aug.cli import main

    path = write(tmp_path, VARIANTS_JOB.format(default=str(tmp_path / "absent")))
    result = CliRunner().invoke(main, ["run", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        f"Error: job {path} [data] spec 'npz:{tmp_path}/absent/scans.npz?split=train': no such file or folder "
        "(expected the scans, scans.npz; GENAUG_DATA=FOLDER points a shipped job at the folder holding it, "
        "--set data.spec=npz:PATH at any copy)"]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("path", sorted(JOBS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_job_says_where_its_files_come_from_and_takes_genaug_data(path, monkeypatch):
    job = load_job(path)
    if job.data.spec.startswith("builtin:"):
        return
    assert job.data.source, f"{path.name}: [data] source missing"
    monkeypatch.setenv("GENAUG_DATA", "/elsewhere")
    moved = load_job(path)
    assert "/elsewhere" in moved.data.spec and "shared" not in moved.data.spec
    assert moved.synthesize.variants_of is None or "/elsewhere" in moved.synthesize.variants_of
