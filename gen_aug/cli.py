"""The `genaug` command: a thin click layer that parses options, calls one library function, prints a summary."""

from __future__ import annotations

import click

from gen_aug import __version__
from gen_aug.errors import GenaugError


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


@main.command("data")
@click.argument("spec", metavar="SPEC")
def data_command(spec):
    """Load a data set and print its size, image shape and per-class counts.

    SPEC is KIND:PATH[?OPTIONS], KIND one of builtin, folder, npz, idx; OPTIONS are
    split=train|val|test, limit_per_class=K, resolution=R, channels=1|3 joined by '&'.

    \b
    Examples:
      genaug data builtin:digits
      genaug data 'idx:../shared/data/mnist-t10k?split=test'
      genaug data 'npz:../shared/data/retinamnist/retinamnist.npz?split=train&limit_per_class=50'
      genaug data 'folder:scans/?resolution=64&channels=1'
    """
    from gen_aug.data import describe, load_data

    click.echo(describe(load_data(spec)))


@main.command("train")
@click.option("--job", "job_path", metavar="TOML", help="Job file; options given here override its values.")
@click.option("--data", "data_spec", metavar="SPEC", help="Training images, as `genaug data` takes them.")
@click.option("--model", "family", metavar="cgan|cvae", help="Model family.")
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


@main.command("synthesize")
@click.option("--model", "snapshot", required=True, metavar="SNAPSHOT", help="A model.safetensors from genaug train.")
@click.option("--n", "n", metavar="N", help="Images in all: 1000, 1e6 or 1_000_000 (left out with --per-class).")
@click.option("--out", required=True, metavar="DIR", help="Output folder, or a URI such as s3://bucket/dir.")
@click.option("--per-class", metavar="K|CLASS=K,...", help="K images of every class, or a count per class.")
@click.option("--class-weights", metavar="balance|CLASS=W,...", help="'balance' tops up small classes of --data; or weights.")
@click.option("--classes", metavar="CLASS,...", help="Only these classes (names or indices).")
@click.option("--data", "data_spec", metavar="SPEC", help="The real set, for --class-weights balance and --min-confidence.")
@click.option("--shard-size", type=click.IntRange(min=1), default=10_000, show_default=True, metavar="K", help="Images per shard.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, metavar="S", help="Image i comes from (S, i) alone.")
@click.option("--gpus", type=click.IntRange(min=0), metavar="N", help="One worker per GPU [default: every visible GPU].")
@click.option("--workers", type=click.IntRange(min=1), metavar="N", help="CPU workers, without GPUs [default: one per CPU].")
@click.option("--encode-processes", type=click.IntRange(min=0), metavar="P",
              help="PNG encoder processes per worker; 0: one thread [default: the node's CPUs per GPU - 1; 0 on CPU].")
@click.option("--format", "image_format", type=click.Choice(["parquet", "png", "raw"]), default="parquet",
              show_default=True, help="parquet: PNGs in HF datasets layout; png: ImageFolder tree; raw: uint8 pixels.")
@click.option("--address", metavar="auto|HOST:PORT|ray://HOST:PORT", help="Join this Ray cluster instead of starting one.")
@click.option("--resume", is_flag=True, help="Keep the finished shards in --out that verify; write the rest.")
@click.option("--overwrite", is_flag=True, help="Replace a previous genaug output in --out.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), metavar="P",
              help="Keep only images that a classifier of --data's train split puts in their class with probability >= P.")
def synthesize_command(snapshot, n, out, per_class, class_weights, classes, data_spec, shard_size, seed, gpus,
                       workers, encode_processes, image_format, address, resume, overwrite, min_confidence):
    """Generate N labelled images with Ray workers into Parquet or PNG shards and a verifiable manifest.

    Image i comes from (--seed, i) alone: the output is the same byte for byte whatever the
    number of workers or the order shards finish in. out/manifest.json is written last.
    With --min-confidence, image i tries latents i, i+N, i+2N, ... until one passes; the
    latent used is stored with each image and the manifest records the acceptance rates.

    \b
    Examples:
      genaug synthesize --model runs/digits/model.safetensors --n 1e5 --workers 2 --out synth/
      genaug synthesize --model model.safetensors --n 1e6 --gpus 8 --out /shared/synth
      genaug synthesize --model model.safetensors --per-class 500 --classes 3,5 --format png --out png/
      genaug synthesize --model model.safetensors --n 5000 --class-weights balance --data builtin:digits --out top-up/
      genaug synthesize --model model.safetensors --n 1e7 --address auto --out s3://bucket/synth
      genaug synthesize --model model.safetensors --n 1e5 --out synth/ --resume
      genaug synthesize --model runs/digits/model.safetensors --n 1e4 --min-confidence 0.9 --data builtin:digits --out sure/
    """
    from gen_aug.synthesis.manifest import describe_manifest
    from gen_aug.synthesis.driver import SynthesisOptions, synthesize

    options = SynthesisOptions(
        snapshot, out, n=n, per_class=per_class, class_weights=class_weights, classes=classes, data=data_spec,
        shard_size=shard_size, seed=seed, gpus=gpus, workers=workers, encode_processes=encode_processes,
        image_format=image_format, address=address, resume=resume, overwrite=overwrite, min_confidence=min_confidence,
    )
    click.echo(describe_manifest(synthesize(options), out))


@main.command("verify")
@click.argument("out", metavar="OUT")
@click.pass_context
def verify_command(ctx, out):
    """Re-hash every shard of a synthesis output against its manifest; exit 1 on any problem.

    Reports shards missing or corrupt, files the manifest does not list, and manifest
    entries naming paths outside the output (refused, never read).

    \b
    Examples:
      genaug verify synth/
      genaug verify s3://bucket/synth
    """
    from gen_aug.synthesis.manifest import verify

    report = verify(out)
    click.echo("\n".join(report.lines()))
    if not report.ok:
        ctx.exit(1)


@main.command("bench")
@click.option("--model", "snapshot", metavar="SNAPSHOT", help="A model.safetensors [default: an untrained cgan of the default size].")
@click.option("--resolution", type=click.IntRange(8, 64), default=28, show_default=True, metavar="R",
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
    import json
    import tempfile
    from pathlib import Path

    from gen_aug.bench import BenchOptions, describe_bench, run_bench
    from gen_aug.synthesis.plan import parse_count

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


def _seed_list(ctx, param, value):
    """'0,1,2' -> (0, 1, 2), for --seeds."""
    if value is None:
        return None
    try:
        seeds = tuple(int(item) for item in value.split(",") if item.strip())
    except ValueError:
        seeds = ()
    if not seeds or min(seeds) < 0:
        raise click.BadParameter(f"{value!r} (expected whole numbers >= 0 separated by commas, e.g. 0,1,2)")
    return seeds


@main.command("evaluate")
@click.option("--real", "real_spec", required=True, metavar="SPEC",
              help="Real data: its train split trains the classifiers, its test split tests them.")
@click.option("--synthetic", required=True, metavar="OUT", help="The folder of a finished genaug synthesize.")
@click.option("--report", "report_dir", metavar="DIR", help="Report folder [default: OUT-report].")
@click.option("--seeds", callback=_seed_list, default="0,1,2", show_default=True, metavar="S,S,...",
              help="One classifier per seed for each training set.")
@click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True, metavar="N",
              help="Classifier optimiser steps, the same for every training set.")
@click.option("--mix-ratio", type=click.FloatRange(min=0), default=1.0, show_default=True, metavar="R",
              help="Synthetic images added per real training image.")
@click.option("--real-share", type=click.FloatRange(0, 1, min_open=True, max_open=True), metavar="F",
              help="Repeat the real images until they are about this share of real + synthetic (e.g. 0.5) "
                   "[default: each once].")
@click.option("--sample-size", type=click.IntRange(min=2), default=2000, show_default=True, metavar="N",
              help="Images per set for Fréchet distance and precision/recall.")
@click.option("--k", type=click.IntRange(min=1), default=3, show_default=True, metavar="K",
              help="Neighbours for precision/recall.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
def evaluate_command(real_spec, synthetic, report_dir, seeds, steps, mix_ratio, real_share, sample_size, k, device):
    """Measure synthetic images against real ones and write report.json, report.md and figures.

    A classifier trained on the real train split (cached) judges class consistency and gives
    the features for Fréchet distance and precision/recall; the same classifier budget is then
    trained on synthetic only (TSTR), real only and real + synthetic, each tested on real test.

    \b
    Examples:
      genaug evaluate --real builtin:digits --synthetic runs/digits/synth
      genaug evaluate --real 'idx:../shared/data/mnist-t10k' --synthetic synth/ --report reports/mnist
      genaug evaluate --real 'npz:../shared/data/retinamnist/retinamnist.npz?limit_per_class=20' \\
          --synthetic synth/ --seeds 0,1,2 --steps 500 --mix-ratio 2
    """
    from gen_aug.evaluation.evaluate import EvaluationOptions, describe_evaluation, evaluate

    options = EvaluationOptions(real_spec, synthetic, report_dir, seeds, steps, mix_ratio, sample_size, k, device,
                                real_share)
    result, folder = evaluate(options, log=lambda message: click.echo(message, err=True))
    click.echo(describe_evaluation(result, folder))


@main.command("run")
@click.argument("job_path", metavar="JOB.toml")
def run_command(job_path):
    """Train, synthesize and evaluate a job in one go, skipping each stage whose output is complete.

    The snapshot counts as complete when it has the job's steps, model and data; the synthesis
    output when it has the job's settings and verifies; the report when it was computed from
    the same real data, synthetic manifest and settings. Rerunning a finished job does nothing.

    \b
    Examples:
      genaug run jobs/digits.toml
      genaug run jobs/mnist.toml
    """
    from gen_aug.config import load_job
    from gen_aug.evaluation.evaluate import describe_evaluation
    from gen_aug.pipeline import describe_stages, run_job

    stages, result, report = run_job(load_job(job_path), echo=click.echo)
    click.echo("== done")
    click.echo(describe_stages(stages))
    if stages[-1].action == "skipped":
        click.echo(describe_evaluation(result, report))
