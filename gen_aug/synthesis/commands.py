"""The synthesis commands of the `genaug` CLI: `synthesize` and `verify`, each parsing options and calling one function."""

from __future__ import annotations

import click

from gen_aug.synthesis.options import (
    CANDIDATES_PER_ROUND, MAX_CANDIDATES_PER_ROUND, MAX_START_TIMEOUT_S, WORKER_START_TIMEOUT_S, SynthesisOptions,
)
from gen_aug.output.plan import MAX_AUTOMATIC_SHARD_SIZE, MAX_SEED


@click.command("synthesize")
@click.option("--model", "snapshot", required=True, metavar="SNAPSHOT", help="A model.safetensors from genaug train.")
@click.option("--n", "n", metavar="N", help="Images in all: 1000, 1e6 or 1_000_000 (left out with --per-class).")
@click.option("--out", required=True, metavar="DIR", help="Output folder, or a URI such as s3://bucket/dir.")
@click.option("--per-class", metavar="K|CLASS=K,...", help="K images of every class, or a count per class.")
@click.option("--class-weights", metavar="balance|CLASS=W,...", help="'balance' tops up small classes of --data; or weights.")
@click.option("--classes", metavar="CLASS,...", help="Only these classes (names or indices).")
@click.option("--data", "data_spec", metavar="SPEC", help="The real set, for --class-weights balance and --min-confidence.")
@click.option("--shard-size", type=click.IntRange(min=1), metavar="K",
              help=f"Images per shard [default: at most {MAX_AUTOMATIC_SHARD_SIZE:,}, and small enough that every "
                   "worker gets 2 or more shards].")
@click.option("--seed", type=click.IntRange(min=0, max=MAX_SEED), default=0, show_default=True, metavar="S", help="Image i comes from (S, i) alone.")
@click.option("--gpus", type=click.IntRange(min=0), metavar="N", help="One worker per GPU [default: every visible GPU].")
@click.option("--workers", type=click.IntRange(min=1), metavar="N", help="CPU workers, without GPUs [default: one per CPU].")
@click.option("--encode-processes", type=click.IntRange(min=0), metavar="P",
              help="PNG encoder processes per worker; 0: one thread [default: the node's CPUs per GPU - 1; 0 on CPU].")
@click.option("--format", "image_format", type=click.Choice(["parquet", "png", "raw"]), default="parquet",
              show_default=True, help="parquet: PNGs in HF datasets layout; png: ImageFolder tree; raw: uint8 pixels.")
@click.option("--address", metavar="auto|HOST:PORT|ray://HOST:PORT", help="Join this Ray cluster instead of starting one.")
@click.option("--worker-start-timeout", "worker_start_timeout_s", type=click.FloatRange(1, MAX_START_TIMEOUT_S),
              default=WORKER_START_TIMEOUT_S, show_default=True, metavar="SECONDS",
              help="Fail for want of workers only when none has started in this long; later ones join as they start.")
@click.option("--resume", is_flag=True, help="Keep the finished shards in --out that verify; write the rest.")
@click.option("--overwrite", is_flag=True, help="Replace a previous genaug output in --out.")
@click.option("--card", is_flag=True,
              help="Also write a README.md dataset card for the Hugging Face Hub (pyarrow and pandas then read out/data).")
@click.option("--min-confidence", type=click.FloatRange(0, 1), metavar="P",
              help="Keep only images that a classifier of --data's train split puts in their class with probability >= P.")
@click.option("--select", "select", type=click.Choice(["useful"]),
              help="Keep candidates a classifier of --data's train split labels right and finds within their class's "
                   "real spread, the least sure of each round (--min-confidence's alternative).")
@click.option("--select-candidates", type=click.IntRange(1, MAX_CANDIDATES_PER_ROUND), default=CANDIDATES_PER_ROUND,
              show_default=True, metavar="M", help="With --select useful: candidates judged together per image.")
@click.option("--steps", type=click.IntRange(1, 1000), metavar="K",
              help="cdm snapshots: sampler steps instead of the snapshot's (cost grows with them).")
@click.option("--guidance", type=click.FloatRange(min=0), metavar="W",
              help="cdm snapshots: classifier-free guidance weight instead of the snapshot's; 0: plain conditional.")
@click.option("--variants-of", "variants_of", metavar="SPEC",
              help="cdm or cvae snapshots: make variants of the real images of SPEC's split (its split= option) "
                   "instead of images from noise; each row records its source.")
@click.option("--per-image", type=click.IntRange(min=1), default=10, show_default=True, metavar="K",
              help="With --variants-of: variants of each real image at each strength.")
@click.option("--strength", "strength_text", default="0.5", show_default=True, metavar="S[,S...]",
              help="With --variants-of: the share of the sampler's path each variant runs (0: the real image, "
                   "1: from noise); several give K variants at each.")
@click.option("--mix-classes", is_flag=True,
              help="With --variants-of: render each variant under another class than its source's, every other "
                   "class in turn (soft-labelled by the class-mix arms).")
@click.option("--mix-pairs", metavar="SOURCE>TARGET,...",
              help="With --mix-classes: only these class pairs, e.g. benign>malignant; each class's sources go to "
                   "its targets in turn, a class with none is not varied.")
@click.option("--restore", is_flag=True,
              help="Write each image back at the size and depth of the model's training pictures (padding cut off, "
                   "16-bit sources as 16-bit PNGs), for use beside them; evaluate takes an output without it.")
def synthesize_command(snapshot, n, out, per_class, class_weights, classes, data_spec, shard_size, seed, gpus,
                       workers, encode_processes, image_format, address, worker_start_timeout_s, resume, overwrite,
                       card, min_confidence, select, select_candidates, steps, guidance, variants_of, per_image,
                       strength_text, mix_classes, mix_pairs, restore):
    """Generate N labelled images with Ray workers into Parquet or PNG shards and a verifiable manifest.

    Image i comes from (--seed, i) alone: with --shard-size the output is the same byte for byte
    whatever the number of workers or the order shards finish in (without it, the shards are
    sized for the workers; the images are the same). out/_manifest.json is written last.
    The plan (images, shards, workers, estimated bytes) is printed on stderr before the first
    shard; a local --out whose file system lacks the estimated bytes is refused.
    With --min-confidence, image i tries latents i, i+N, i+2N, ... until one passes; the
    latent used is stored with each image and the manifest records the acceptance rates.
    With --variants-of (cdm or cvae snapshots), each real image of the spec's split is noised part of
    the way and denoised under its class, K times at each strength; every row records its
    source (split, index, class), variant and strength, and the manifest the sources' sha256;
    --mix-classes renders each under another class than its source's instead.
    With --select useful, each image (or variant) is, of M candidates at a time, the one the
    classifier is least sure of among those it labels right and finds within the class's
    real spread in its features; the candidate kept is stored with it.

    \b
    Examples:
      genaug synthesize --model runs/digits/model.safetensors --n 1e5 --workers 2 --out synth/
      genaug synthesize --model model.safetensors --n 1e6 --gpus 8 --out /shared/synth
      genaug synthesize --model model.safetensors --per-class 500 --classes 3,5 --format png --out png/
      genaug synthesize --model model.safetensors --n 5000 --class-weights balance --data builtin:digits --out top-up/
      genaug synthesize --model model.safetensors --n 1e7 --address auto --out s3://bucket/synth
      genaug synthesize --model model.safetensors --n 1e5 --out synth/ --resume
      genaug synthesize --model model.safetensors --n 1e5 --out synth/ --card   # then upload synth/ to the Hub
      genaug synthesize --model runs/digits/model.safetensors --n 1e4 --min-confidence 0.9 --data builtin:digits --out sure/
      genaug synthesize --model runs/cdm/model.safetensors --variants-of builtin:digits --per-image 5 --strength 0.3,0.5 --out var/
      genaug synthesize --model runs/cdm/model.safetensors --variants-of builtin:digits --select useful --out useful/
      genaug synthesize --model runs/xrays/model.safetensors --n 1000 --format png --restore --out xrays-synth/
    """
    from gen_aug.synthesis.driver import synthesize
    from gen_aug.output.manifest import describe_manifest
    from gen_aug.output.plan import parse_count
    from gen_aug.variants import parse_strengths

    options = SynthesisOptions(
        model=snapshot, out=out, n=parse_count(n) if n is not None else None, per_class=per_class,
        class_weights=class_weights, classes=classes, data=data_spec, shard_size=shard_size, seed=seed, gpus=gpus,
        workers=workers, encode_processes=encode_processes, format=image_format, address=address,
        worker_start_timeout_s=worker_start_timeout_s, resume=resume,
        overwrite=overwrite, card=card, min_confidence=min_confidence, select=select,
        select_candidates=select_candidates, steps=steps, guidance=guidance,
        variants_of=variants_of, per_image=per_image, strength=parse_strengths(strength_text),
        mix_classes=mix_classes, mix_pairs=mix_pairs, restore=restore,
    )
    click.echo(describe_manifest(synthesize(options), out))


@click.command("verify")
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
    from gen_aug.output.verification import verify

    report = verify(out)
    click.echo("\n".join(report.lines()))
    if not report.ok:
        ctx.exit(1)
