"""The `genaug` command: a thin click layer that parses options, calls one library function, prints a summary."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

# Before torch loads OpenMP: a thread waiting for work spins for about 0.2 ms, then sleeps. libgomp's default
# (about 3 ms) takes the CPU other processes need, so a job on a busy machine slowed far beyond its share; never
# spinning (OMP_WAIT_POLICY=PASSIVE) made small networks 1.5x slower on a quiet one (benchmarks/busy_fairness.py).
SPIN_BEFORE_SLEEP = "20000"  # GOMP_SPINCOUNT: busy-wait iterations, about 10 ns each
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", SPIN_BEFORE_SLEEP)

import click  # noqa: E402

from gen_aug import __version__
from gen_aug.errors import GenaugError
from gen_aug.evaluation.commands import evaluate_command
from gen_aug.synthesis.commands import synthesize_command, verify_command


class OneLineUsageError(click.ClickException):
    """A mistake in a command's options, shown as one `Error: ...` line (click adds usage lines) with status 2."""

    exit_code = 2


class GenaugGroup(click.Group):
    """Turns library errors into click's one-line `Error: ...` and exit status 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GenaugError as error:
            raise click.ClickException(str(error)) from None
        except click.UsageError as error:
            command = error.ctx.command_path if error.ctx else "genaug"
            raise OneLineUsageError(f"{command}: {error.format_message()} (see '{command} --help')") from None


@click.group("genaug", cls=GenaugGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="genaug")
def main():
    """Train class-conditional image generators on small labelled sets and synthesize labelled images at scale."""


main.add_command(synthesize_command)
main.add_command(verify_command)
main.add_command(evaluate_command)


@main.command("data")
@click.argument("spec", metavar="SPEC")
@click.option("--export-split", "export_dir", metavar="DIR", help="Also write SPEC's split as DIR/<class>/<index>.png (DIR new or empty).")
def data_command(spec, export_dir):
    """Load a data set and print its size, image shape, per-class counts and what loading did to it.

    SPEC is KIND:PATH[?OPTIONS], KIND one of builtin, folder, npz, idx; OPTIONS, joined by '&', are
    split=train|val|test, limit_per_class=K (the first K of each class), class_fraction=CLASS:F (the first
    share F of one class: an imbalanced cut), resolution=R with resize=stretch|crop|pad, channels=1|3;
    for folders intensity=set|image|full and skip_bad=true; for numbered classes (npz, idx, builtin)
    classes=NAME,... in label order.

    \b
    Examples:
      genaug data builtin:digits
      genaug data 'idx:../shared/data/mnist-t10k?split=test'
      genaug data 'npz:../shared/data/retinamnist/retinamnist.npz?split=train&limit_per_class=50'
      genaug data 'folder:scans/?resolution=64&channels=1'
      genaug data 'npz:breastmnist.npz?classes=malignant,benign&class_fraction=malignant:0.1'
      genaug data 'folder:xrays/?intensity=image&skip_bad=true' --export-split xrays-train/
    """
    from gen_aug.data import describe, load_data
    from gen_aug.data.export import export_folder, export_split

    export = export_folder(export_dir)  # refused before loading, so a long load never ends in that refusal
    data = load_data(spec)
    click.echo(describe(data) + (f"\n{export_split(data, export)}" if export else ""))


@main.command("train")
@click.option("--job", "job_path", metavar="TOML", help="Job file; options given here override its values.")
@click.option("--data", "data_spec", metavar="SPEC", help="Training images, as `genaug data` takes them.")
@click.option("--model", "family", metavar="cgan|cvae|cdm",
              help="Model family: cgan (conditional GAN), cvae (conditional VAE) or cdm (class-conditional diffusion).")
@click.option("--out", metavar="DIR", help="Run folder for model.safetensors, train_state.pt, log.jsonl, previews.")
@click.option("--steps", type=click.IntRange(min=1), metavar="N", help="Optimiser steps in all.")
@click.option("--batch-size", type=click.IntRange(min=1), metavar="B", help="Real images per step.")
@click.option("--seed", type=click.IntRange(min=0), metavar="S", help="Seed of initialisation, batches and noise.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="auto picks cuda when visible.")
@click.option("--resume", is_flag=True, help="Continue the run in --out up to --steps, exactly as if never stopped.")
def train_command(job_path, data_spec, family, out, steps, batch_size, seed, device, resume):
    """Train a class-conditional generator and write its snapshot, resume state, log and preview grids.

    Without --job the digits job's values are the defaults. An --out that already holds a
    model is never overwritten: pass --resume to continue it, or choose a new --out.

    \b
    Examples:
      genaug train --job jobs/digits.toml
      genaug train --job jobs/mnist.toml --steps 20000 --device cuda
      genaug train --data builtin:digits --model cvae --out runs/digits-cvae --steps 2000
      genaug train --job jobs/digits.toml --steps 6000 --resume
    """
    from gen_aug.config import job_with_overrides
    from gen_aug.train import describe_summary, train_job

    job = job_with_overrides(
        job_path, data_spec, family, out=out, steps=steps, batch_size=batch_size, seed=seed, device=device
    )
    click.echo(describe_summary(train_job(job, resume=resume)))


@main.command("sample")
@click.option("--model", "snapshot", required=True, metavar="SNAPSHOT", help="A model.safetensors from genaug train.")
@click.option("--per-class", type=click.IntRange(1, 100), default=10, show_default=True, metavar="K", help="Images (or steps) per class.")
@click.option("--out", required=True, metavar="PNG", help="Grid image to write, one row per class.")
@click.option("--interpolate", is_flag=True, help="Walk the latent space from seed S to seed S+1 instead.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, metavar="S")
def sample_command(snapshot, per_class, out, interpolate, seed):
    """Draw a labelled grid of generated images from a trained snapshot.

    \b
    Examples:
      genaug sample --model runs/digits/model.safetensors --per-class 10 --out digits.png
      genaug sample --model runs/digits/model.safetensors --per-class 8 --interpolate --seed 3 --out walk.png
    """
    from gen_aug.grid import draw_samples

    click.echo(f"wrote {draw_samples(snapshot, out, per_class, seed, interpolate)}")


@main.command("bench")
@click.option("--model", "snapshot", metavar="SNAPSHOT", help="A model.safetensors [default: an untrained cgan of the default size].")
@click.option("--resolution", type=click.IntRange(8, 256), default=28, show_default=True, metavar="R",
              help="Image size of the untrained default model.")
@click.option("--channels", type=click.Choice(["1", "3"]), default="1", show_default=True, help="Of the untrained default model.")
@click.option("--n", "n", default="20000", show_default=True, metavar="N", help="Images of the end-to-end synthesis run.")
@click.option("--workers", type=click.IntRange(min=1), metavar="N", help="CPU workers [default: one per core].")
@click.option("--gpus", type=click.IntRange(min=0), default=0, show_default=True, metavar="N", help="GPU workers.")
@click.option("--format", "formats", type=click.Choice(["parquet", "png", "raw"]), multiple=True,
              help="Output formats to measure (repeat the option) [default: parquet].")
@click.option("--shard-size", type=click.IntRange(min=1), default=2000, show_default=True, metavar="K")
@click.option("--seconds", type=click.FloatRange(min=0.1, max=600), default=3.0, show_default=True, metavar="S",
              help="How long each generator or encoder measurement runs.")
@click.option("--encode-processes", type=click.IntRange(min=0), metavar="P",
              help="Encoder processes per worker in the end-to-end run, as for synthesize [default: its default].")
@click.option("--scaling", is_flag=True,
              help="Also run end to end on one worker and print the speed-up of all workers over one.")
@click.option("--repeats", type=click.IntRange(1, 20), default=1, show_default=True, metavar="K",
              help="End-to-end runs of each kind; figures are their median.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True), metavar="PATH",
              help="Also write every figure, with the machine's description, to PATH.")
def bench_command(snapshot, resolution, channels, n, workers, gpus, formats, shard_size, seconds, encode_processes,
                  scaling, repeats, json_path):
    """Measure generator, encoder and end-to-end synthesis throughput, and their ratio to the ceiling.

    In one run on this machine: (a) one worker's generator into host memory, (b) one core's
    encoder per format, and all cores as threads and as processes, (c) a real synthesize run,
    (d) the peak memory of its driver and workers. The ceiling is min(a x workers, b x cores).

    \b
    Examples:
      genaug bench
      genaug bench --workers 1 --n 1e4
      genaug bench --workers 2 --n 5e4 --format raw --scaling --repeats 3
      genaug bench --format parquet --format raw --json bench.json
      genaug bench --gpus 1 --n 1e6 --format parquet --format raw
      genaug bench --model runs/digits/model.safetensors --workers 2
    """
    from gen_aug.bench import BenchOptions, describe_bench, run_bench
    from gen_aug.output.plan import parse_count

    if workers is not None and gpus:
        raise click.BadParameter("give --workers (CPU) or --gpus, not both", param_hint="--workers")
    options = BenchOptions(snapshot, resolution, int(channels), parse_count(n), workers, gpus,
                           tuple(formats) or ("parquet",), shard_size, seconds, encode_processes, scaling,
                           repeats)
    with tempfile.TemporaryDirectory(prefix="genaug-bench-") as work_dir:
        results = run_bench(options, Path(work_dir))
    click.echo(describe_bench(results))
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2) + "\n")


@main.command("run")
@click.argument("job_path", metavar="JOB.toml")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Replace a setting of the job file, e.g. data.spec=npz:PATH or train.steps=500 (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print each stage's work and rough time here; run nothing.")
def run_command(job_path, overrides, dry_run):
    """Train, synthesize and evaluate a job in one go, skipping each stage whose output is complete.

    The snapshot counts as complete when it has the job's steps, model and data; the synthesis
    output when it has the job's settings and verifies; the report when it was computed from
    the same real data, synthetic manifest and settings. Rerunning a finished job does nothing.

    \b
    Examples:
      genaug run jobs/digits.toml
      genaug run jobs/digits.toml --dry-run
      genaug run jobs/mnist.toml
      GENAUG_DATA=~/medmnist genaug run jobs/breastmnist.toml
      genaug run jobs/breastmnist.toml --set data.spec=npz:scans/breastmnist.npz --set train.steps=500
    """
    from gen_aug.config import load_job
    from gen_aug.evaluation.evaluate import describe_evaluation
    from gen_aug.pipeline import describe_stages, run_job

    job = load_job(job_path, overrides)
    job.data.check_found(job_path)
    if dry_run:
        from gen_aug.pipeline import dry_run as plan_only

        click.echo("\n".join(plan_only(job)))
        return
    stages, result, report = run_job(job, echo=click.echo)
    click.echo("== done")
    click.echo(describe_stages(stages))
    if stages[-1].action == "skipped":
        click.echo(describe_evaluation(result, report))
