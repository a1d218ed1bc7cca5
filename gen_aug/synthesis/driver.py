"""`genaug synthesize`: check every input, prepare the output, run the shards on Ray, write the manifest last.

Every bad input raises GenaugError before anything is written. The only Ray-facing parts are the
session (which Ray) and the scheduler (which actor writes which shard); this module joins them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from gen_aug.errors import GenaugError
from gen_aug.sampling import GENERATION_CHUNK, NonFiniteImages
from gen_aug.output.claim import Claim, check_claim, claim_output, refuse_live_claim, release_claim
from gen_aug.synthesis.footprint import check_room, describe_plan, estimate_footprint, rough_time
from gen_aug.output.manifest import (
    JOB_FILE, MANIFEST, MANIFEST_NAMES, build_manifest, done_file, finished_records, mark_finished, mark_unfinished,
    remove_state, write_json,
)
from gen_aug.output.ownership import Ownership, inspect_output, refuse_foreign, remove_ours
from gen_aug.synthesis.options import SynthesisOptions, check_options
from gen_aug.output.plan import MAX_AUTOMATIC_SHARD_SIZE, Plan, automatic_shard_size, make_plan
from gen_aug.output.records import ShardRecord
from gen_aug.synthesis.scheduler import ShardJob, ShardRun, run_shards
from gen_aug.models import sampler_settings, with_sampler
from gen_aug.output.card import CARD, dataset_card, is_genaug_card, may_write_card
from gen_aug.synthesis.session import Workers, plan_workers, ray_session
from gen_aug.output.settings import JobSettings
from gen_aug.output.storage import Location, open_location
from gen_aug.synthesis.variant_job import VariantSources, plan_variants
from gen_aug.synthesis.worker import peak_rss_bytes


MAX_SHARD_BYTES = 2**31  # uint8 pixels of one shard; a worker holds a few shards at once


@dataclass(frozen=True)
class PlannedJob:
    # On the device asked for, in shards of the size given or, where none is, the largest automatic one:
    # the driver fits both to the workers the cluster gives.
    settings: JobSettings
    snapshot_meta: dict
    classifier_weights: bytes | None  # the judge of a --min-confidence job
    model: torch.nn.Module  # the snapshot's network on the CPU, which draws the sample the size estimate encodes
    variant_sources: VariantSources | None = None  # the real images a --variants-of job varies


def synthesize(options: SynthesisOptions) -> dict:
    """Run a whole synthesis job; returns the manifest it wrote."""
    started = time.time()
    check_options(options)
    planned = plan_job(options, "cpu")
    location = open_location(options.out)
    _check_output(location, options)
    with _naming_the_model(options):
        footprint = estimate_footprint(planned.model, planned.settings.plan, options.format)
    check_room(location, options, footprint, planned.settings.plan)
    new_folder = not location.root_exists()
    try:
        claim = claim_output(location, options.out)
    except OSError as error:
        raise GenaugError(f"--out {options.out!r}: cannot write ({error}; expected a writable folder)") from None
    try:
        # After ray.init, which puts in a SIGTERM handler of its own that exits with no word of --resume.
        with ray_session(options.address) as ray, _sigterm_as_interrupt():
            # Again, now that no other job can start writing here: what it finds holds until this job ends.
            ownership = _check_output(location, options, claim)
            workers = plan_workers(ray, options)
            settings = _fit_to_workers(planned, options, workers, ownership)
            kept = _prepare_output(location, options, settings, ownership)
            if options.progress:  # once every refusal is past, so a refused job prints its one error line alone
                kept_images = sum(record.rows for record in kept.values())
                print(describe_plan(settings.plan, workers, footprint, options.shard_size is not None, kept_images,
                                    rough_time(footprint, settings, workers, kept_images)), file=sys.stderr)
            job = ShardJob(settings, workers, Path(options.model).read_bytes(), location,
                           planned.classifier_weights, options.progress, options.worker_start_timeout_s,
                           planned.variant_sources)
            with _naming_the_model(options):
                run = run_shards(ray, job, kept)
        manifest = _manifest(options, settings, planned.snapshot_meta, run, kept, started)
        check_claim(location, claim, options.out)
        _finish(location, options, settings, manifest)
    finally:
        release_claim(location, claim)
        if new_folder:
            location.remove_root_if_empty()
    return manifest


def _finish(location: Location, options: SynthesisOptions, settings: JobSettings, manifest: dict) -> None:
    try:
        write_json(location, MANIFEST, manifest)
        if options.card and may_write_card(location):  # after the manifest: never a card of an unfinished output
            location.write_atomic(CARD, dataset_card(settings, manifest).encode())
        elif options.card and options.progress:
            print(f"note: {options.out}/{CARD} is not genaug's card: left as it is", file=sys.stderr)
        mark_finished(location)
        remove_state(location)
        location.sweep_temporaries()
    except OSError as error:
        raise GenaugError(
            f"--out {options.out!r}: cannot write the manifest ({error}; every shard is finished and recorded: "
            "make room and rerun the same command with --resume)"
        ) from None


@contextlib.contextmanager
def _naming_the_model(options: SynthesisOptions):
    """A model that generates NaN is a bad --model: its error names it."""
    try:
        yield
    except NonFiniteImages as error:
        raise GenaugError(f"--model {options.model!r}: {error}") from None


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a scheduler's or `kill`'s stop) ends the job as Ctrl-C does: finished shards kept, --resume named."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def plan_job(options: SynthesisOptions, device: str) -> PlannedJob:
    """The settings these options make on `device`, every input checked; trains (or takes from the cache) the judge."""
    from gen_aug.checkpoint import load_snapshot, training_data

    snapshot = load_snapshot(options.model)
    config = snapshot.model.config
    shard_size = options.shard_size if options.shard_size is not None else _largest_automatic_shard_size(config)
    variants, variant_sources = None, None
    if options.variants_of is not None:
        plan, variants, variant_sources = plan_variants(options, snapshot, shard_size)
    else:
        plan = job_plan(options, tuple(snapshot.meta["class_names"]), shard_size)
    _check_shard_bytes(plan, config)
    if options.restore:  # the size and depth of the pictures the model learnt, from the data its snapshot records
        data = training_data(snapshot.meta, f"--restore: --model {options.model!r}")
        plan = dataclasses.replace(plan, restore=data.form.checked(f"--restore: {data.description}"))
    job_filter, classifier_weights = None, None
    if options.min_confidence is not None or options.select is not None:
        from gen_aug.synthesis.filter import filter_settings

        # Variants are judged against the real set they vary, unless another is named.
        data = options.data if options.data is not None or variants is None else options.variants_of
        job_filter, classifier_weights = filter_settings(
            data, options.min_confidence, options.select, options.select_candidates, options.classifier,
            snapshot.meta,
        )
    sampler = sampler_settings(snapshot.model, options.steps, options.guidance)
    settings = JobSettings(plan, options.format, snapshot.sha256, device, GENERATION_CHUNK[device], job_filter, sampler,
                           variants)
    return PlannedJob(settings, snapshot.meta, classifier_weights, with_sampler(snapshot.model, sampler),
                      variant_sources)


def _largest_automatic_shard_size(config) -> int:
    """10,000 images, or fewer where so many would pass MAX_SHARD_BYTES: no size genaug picks is one it refuses."""
    return max(1, min(MAX_AUTOMATIC_SHARD_SIZE, MAX_SHARD_BYTES // (config.channels * config.resolution**2)))


def _fit_to_workers(planned: PlannedJob, options: SynthesisOptions, workers: Workers,
                    ownership: Ownership) -> JobSettings:
    """The settings on the workers' device, in shards of the size given, the resumed output's, or one sized for them."""
    settings = dataclasses.replace(planned.settings, device=workers.device,
                                   generation_chunk=GENERATION_CHUNK[workers.device])
    recorded = ownership.settings if options.resume else None
    if recorded is not None:
        settings = keep_recorded_layout(settings, options, recorded)
    if options.shard_size is not None:
        return settings
    if recorded is None:
        size = automatic_shard_size(settings.plan.n, workers.count, _largest_automatic_shard_size(planned.model.config))
        settings = dataclasses.replace(settings, plan=dataclasses.replace(settings.plan, shard_size=size))
    _check_shard_bytes(settings.plan, planned.model.config)  # a record edited by hand may ask for any size
    return settings


def keep_recorded_layout(settings: JobSettings, options: SynthesisOptions,
                         recorded: JobSettings | None) -> JobSettings:
    """The output's recorded file layout, and its shard size where none is given: its finished shards still count.

    This keeps `--resume` and `genaug run` from redoing a job whose worker count (and so automatic size)
    changed, or one written before shards were laid out as a Hugging Face dataset repository.
    """
    if recorded is None:
        return settings
    shard_size = recorded.plan.shard_size if options.shard_size is None else settings.plan.shard_size
    plan = dataclasses.replace(settings.plan, shard_size=shard_size, layout=recorded.plan.layout)
    return dataclasses.replace(settings, plan=plan)


def _check_shard_bytes(plan: Plan, config) -> None:
    """A worker holds whole shards in memory (several at once): refuse shards too big for that."""
    rows = min(plan.shard_size, plan.n)
    image_bytes = config.channels * config.resolution**2
    if rows * image_bytes > MAX_SHARD_BYTES:
        raise GenaugError(
            f"--shard-size {plan.shard_size}: {rows * image_bytes / 2**30:,.1f} GiB of pixels per shard (expected "
            f"at most {MAX_SHARD_BYTES / 2**30:g} GiB: --shard-size {MAX_SHARD_BYTES // image_bytes:,} or less)"
        )


def local_device(options: SynthesisOptions) -> str:
    """The device a job of these options gets from a private Ray on this machine."""
    cpu_only = options.gpus == 0 or (options.gpus is None and options.workers is not None)
    return "cpu" if cpu_only or not torch.cuda.is_available() else "cuda"


def job_plan(options: SynthesisOptions, class_names: tuple[str, ...], shard_size: int) -> Plan:
    """The plan these options make for a snapshot with `class_names`, in shards of `shard_size` images."""
    real_counts = None
    if options.data is not None:
        from gen_aug.data import load_data

        real = load_data(options.data)
        if real.class_names != class_names:
            raise GenaugError(
                f"--data {options.data!r}: classes {', '.join(real.class_names)} differ from the snapshot's "
                f"(expected {', '.join(class_names)})"
            )
        real_counts = real.class_counts().tolist()
    return make_plan(
        class_names, n=options.n, per_class=options.per_class, class_weights=options.class_weights,
        classes=options.classes, real_counts=real_counts, shard_size=shard_size, seed=options.seed,
    )


def _check_output(location: Location, options: SynthesisOptions, own: Claim | None = None) -> Ownership:
    """Refuse an output this run must not touch; run before anything is written, and again under the claim."""
    refuse_live_claim(location, options.out, own)
    ownership = inspect_output(location)
    if not ownership.ours and not ownership.foreign:
        return ownership
    if not (options.resume or options.overwrite):
        raise GenaugError(
            f"--out {options.out!r}: not empty (expected a new or empty folder; --resume continues the job there, "
            "--overwrite replaces it)"
        )
    refuse_foreign(ownership, options.out)
    return ownership


def _prepare_output(location: Location, options: SynthesisOptions, settings: JobSettings,
                    ownership: Ownership) -> dict[int, ShardRecord]:
    """Write the job's state; with --resume, keep the shards that still hash as recorded. Returns those."""
    kept: dict[int, ShardRecord] = {}
    try:
        if options.overwrite or (options.resume and ownership.settings is None):
            remove_ours(location, ownership)  # the user's own files stay where they are
        elif options.resume and ownership.settings is not None:
            changed = settings.differences(ownership.settings)
            if changed:
                raise GenaugError(
                    f"--resume {options.out!r}: the job there had other {', '.join(changed)} "
                    "(expected the same model, plan, format, filter, sampler, source images, device and generation chunk; "
                    "or use --overwrite)"
                )
            location.sweep_temporaries()
            kept = finished_records(location, settings)
        write_json(location, JOB_FILE, settings.to_dict())
        mark_unfinished(location)
        for record in kept.values():
            write_json(location, done_file(record.shard_idx), record.to_dict())
        for name in MANIFEST_NAMES:  # a manifest (and its card) must never outlive the shards it vouches for
            if location.exists(name):
                location.delete(name)
        if is_genaug_card(location):
            location.delete(CARD)
    except OSError as error:
        raise GenaugError(f"--out {options.out!r}: cannot write ({error}; expected a writable folder)") from None
    return kept


def _manifest(options: SynthesisOptions, settings: JobSettings, snapshot_meta: dict, run: ShardRun,
              kept: dict[int, ShardRecord], started: float) -> dict:
    finished = time.time()
    plan = settings.plan
    written = plan.n - sum(r.rows for r in kept.values())
    timing = {
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "seconds": round(finished - started, 3),  # all of it: checks, Ray start, snapshot loads, shards
        "shard_seconds": round(run.shard_seconds, 3),  # from the first shard handed out to the last one written
        "images_written": written,
        "images_resumed": plan.n - written,
        "images_per_sec": round(written / max(run.shard_seconds, 1e-9), 1),
        "driver_peak_rss_bytes": peak_rss_bytes(),
    }
    snapshot = {"path": os.path.abspath(options.model), "sha256": settings.snapshot_sha256, "meta": snapshot_meta}
    records = list(run.records.values())
    manifest = build_manifest(settings, snapshot, records, timing, run.workers)
    if settings.filter is not None:
        from gen_aug.synthesis.filter import acceptance

        manifest["acceptance"] = acceptance(records, list(plan.class_names))
    return manifest


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")
