"""`genaug run JOB.toml`: train, synthesize and evaluate in one go, each stage skipped when its output is already complete.

Complete means: the snapshot has the job's steps, model and data; the synthesis manifest has the
job's plan, format, snapshot and filter and every shard verifies; report.json was computed from the
same real data, synthetic manifest and settings. A stage that runs makes every later stage's
output stale, and the checks see that, since each names the output of the one before by hash.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gen_aug.config import Job
from gen_aug.errors import GenaugError
from gen_aug.evaluation.options import EvaluationOptions
from gen_aug.evaluation.result import EvaluationResult


@dataclass(frozen=True)
class StageResult:
    stage: str  # train, synthesize or evaluate
    action: str  # ran, resumed or skipped
    seconds: float
    why: str  # what was found, in a few words


def job_paths(job: Job) -> tuple[Path, str, Path]:
    """(run folder, synthesis output, report folder) of a job, the latter two defaulting to inside the run folder."""
    if job.train.out is None:
        raise GenaugError("job [train] out: missing (expected out = \"DIR\", the run folder of every stage)")
    run = Path(job.train.out)
    synthetic = job.synthesize.out if job.synthesize.out is not None else str(run / "synth")
    report = Path(job.evaluate.report) if job.evaluate.report is not None else run / "report"
    return run, synthetic, report


def run_job(job: Job, echo: Callable[[str], None] = print) -> tuple[list[StageResult], EvaluationResult, Path]:
    """Run the job's stages in order; returns (what each stage did, the evaluation result, the report folder)."""
    from gen_aug.data import load_data
    from gen_aug.train import SNAPSHOT_NAME

    run, synthetic, report = job_paths(job)
    data = load_data(job.data.spec)
    stages = [_train_stage(job, data, echo)]
    outputs = synthesis_grid(job, synthetic)
    for point_job, out in outputs:
        stages.append(_synthesize_stage(point_job, run / SNAPSHOT_NAME, out, echo))
    chosen_from = tuple(out for _, out in outputs) if outputs[0][1] != synthetic else ()  # a grid's outputs
    evaluation, result = _evaluate_stage(job, outputs[0][1], report, echo, chosen_from)
    stages.append(evaluation)
    return stages, result, report


def synthesis_grid(job: Job, synthetic: str) -> list[tuple[Job, str]]:
    """(the job at each point, its output folder) for the synthesis settings in the job's [evaluate] tune, in grid
    order: `synthetic` + '-strength-0.3' and so on; the job itself into `synthetic` without them."""
    from gen_aug.evaluation.tuning import grid_points, split_grid

    made_grid, _ = split_grid(job.evaluate.tune)
    if not made_grid:
        return [(job, synthetic)]
    if "strength" in made_grid and job.synthesize.variants_of is None:
        raise GenaugError("job [evaluate] tune strength: the job's [synthesize] makes no variants (expected "
                          "variants_of there: strength is how far a variant of a real image moves)")
    if "guidance" in made_grid and job.model.family != "cdm":
        raise GenaugError(f"job [evaluate] tune guidance: the job's model is a {job.model.family} (expected a cdm: "
                          "guidance is its sampler's)")
    outputs = []
    for point in grid_points(made_grid):
        changes = {"strength": (point["strength"],)} if "strength" in point else {}
        if "guidance" in point:
            changes["guidance"] = point["guidance"]
        name = "-".join(f"{key}-{value:g}" for key, value in point.items())
        outputs.append((dataclasses.replace(job, synthesize=dataclasses.replace(job.synthesize, **changes)),
                        f"{synthetic.rstrip('/')}-{name}"))
    return outputs


def dry_run(job: Job) -> list[str]:
    """What `genaug run` would do and roughly how long each stage takes here (estimate.py), starting no work:
    no training, no Ray, no file written."""
    from gen_aug.data import load_data
    from gen_aug.estimate import estimate_job
    from gen_aug.evaluation.parallel import jobs_for
    from gen_aug.evaluation.tuning import classifier_runs
    from gen_aug.output.manifest import manifest_name
    from gen_aug.output.storage import open_location
    from gen_aug.train import SNAPSHOT_NAME
    from gen_aug.units import duration

    run, synthetic, report = job_paths(job)
    data = load_data(job.data.spec)
    outputs = synthesis_grid(job, synthetic)
    images = sum(_images_of(point_job, data) for point_job, _ in outputs)
    runs = classifier_runs(job.evaluate)
    jobs = jobs_for(job.evaluate.jobs, None if job.train.device == "auto" else job.train.device,
                    runs * job.evaluate.steps)
    found = {
        "train": (run / SNAPSHOT_NAME).exists(),
        "synthesize": all(manifest_name(open_location(out)) is not None for _, out in outputs),
        "evaluate": (report / "report.json").exists(),
    }
    estimates = estimate_job(job, data, images, runs, jobs)
    lines = [f"dry run of {job.train.out}: nothing is trained, synthesized or written"]
    for estimate in estimates:
        lines.append(estimate.line() + ("; its output exists, and is kept if it is the job's" if found[estimate.stage]
                                        else ""))
    lines.append(f"{'in all':<11} about {duration(sum(e.seconds for e in estimates))} if every stage runs")
    return lines


def _images_of(job: Job, data) -> int:
    """Images the job's synthesis makes (a variants job: its sources x variants x strengths)."""
    from gen_aug.data import load_data
    from gen_aug.output.plan import make_plan

    options = job.synthesize
    if options.variants_of is not None:
        return len(load_data(options.variants_of).labels) * options.per_image * len(options.strength)
    return make_plan(data.class_names, n=options.n, per_class=options.per_class, class_weights=options.class_weights,
                     classes=options.classes, real_counts=data.class_counts().tolist()).n


def _timed(stage: str, action: str, why: str, started: float) -> StageResult:
    return StageResult(stage, action, round(time.perf_counter() - started, 1), why)


def _train_stage(job: Job, data, echo) -> StageResult:
    from gen_aug.checkpoint import read_snapshot_meta
    from gen_aug.train import SNAPSHOT_NAME, STATE_NAME, describe_summary, pick_device, train_job

    started = time.perf_counter()
    run = Path(job.train.out)
    snapshot = run / SNAPSHOT_NAME
    resume = (run / STATE_NAME).is_file()
    if snapshot.is_file():
        meta = read_snapshot_meta(snapshot.read_bytes(), f"snapshot {snapshot}")
        _check_same_model(job, data, meta, snapshot)
        if meta.get("steps") == job.train.steps:
            return _timed("train", "skipped", f"{snapshot} has the job's {job.train.steps:,} steps", started)
        if meta.get("steps", 0) > job.train.steps:
            raise GenaugError(
                f"job [train] steps = {job.train.steps}: {snapshot} already has {meta['steps']:,} steps "
                "(expected steps at least that many, or a new [train] out)"
            )
    pick_device(job.train.device)  # a missing GPU is the one line printed, not a stage that starts and fails
    echo(f"== train {job.model.family} on {data.description} for {job.train.steps:,} steps"
         + (" (resuming)" if resume else ""))
    echo(describe_summary(train_job(job, resume=resume)))
    return _timed("train", "resumed" if resume else "ran", f"{job.train.steps:,} steps", started)


def _check_same_model(job: Job, data, meta: dict, snapshot: Path) -> None:
    """A run folder that holds another model or data is the user's, not stale output: refuse, never overwrite."""
    config = meta.get("config", {})
    differs = [key for key, value in job.model.options.items() if config.get(key) != value]
    if meta.get("family") != job.model.family or differs:
        raise GenaugError(
            f"{snapshot}: a {meta.get('family')} with {', '.join(f'{k}={config.get(k)!r}' for k in differs) or 'its config'} "
            f"(expected the job's [model]; choose a new [train] out)"
        )
    if meta.get("data", {}).get("fingerprint") != data.fingerprint:
        raise GenaugError(
            f"{snapshot}: trained on {meta.get('data', {}).get('description')!r}, other data than the job's "
            f"{data.description!r} (expected the same images; choose a new [train] out)"
        )


def synthesis_options(job: Job, snapshot: Path, synthetic: str):
    """The `genaug synthesize` options of a job: its [synthesize] section with the job's snapshot, data and device."""
    from gen_aug.classifiers.classifier import ClassifierConfig

    return dataclasses.replace(
        job.synthesize, model=str(snapshot), out=synthetic, data=job.data.spec,
        gpus=0 if job.train.device == "cpu" else None,
        # A variant job's count follows from its source images, --per-image and --strength.
        n=None if job.synthesize.variants_of is not None else job.synthesize.n,
        # The filter's judge is the evaluation's reference classifier: one network, trained once and cached.
        classifier=dataclasses.replace(ClassifierConfig(), steps=job.evaluate.steps),
    )


def _synthesize_stage(job: Job, snapshot: Path, synthetic: str, echo) -> StageResult:
    from gen_aug.synthesis.driver import keep_recorded_layout, local_device, plan_job, synthesize
    from gen_aug.output.manifest import describe_manifest, manifest_name
    from gen_aug.output.storage import open_location
    from gen_aug.output.verification import verify

    started = time.perf_counter()
    options = synthesis_options(job, snapshot, synthetic)
    planned = plan_job(options, local_device(options))
    location = open_location(synthetic)
    found = _recorded_settings(location)
    # A job without shard_size takes any: the one recorded, whatever worker count chose it, is the job's; and
    # an output keeps the file layout it was written in.
    expected = keep_recorded_layout(planned.settings, options, found)
    same = found is not None and not expected.differences(found)
    if same and manifest_name(location) is not None:
        report = verify(synthetic)
        if not (report.missing or report.corrupt or report.refused):
            for file in report.unlisted[:5]:  # the user's own files: left alone, and named
                echo(f"note: {synthetic}: {file!r} is not genaug's; left as it is")
            return _timed("synthesize", "skipped", f"{synthetic} verifies and has the job's settings", started)
    # The same job, interrupted or with a damaged shard: keep what still verifies, write the rest.
    resume = same
    stale = not resume and not location.is_empty()
    options = dataclasses.replace(options, resume=resume, overwrite=stale)
    echo(f"== synthesize {expected.plan.n:,} images into {synthetic}"
         + (" (resuming)" if resume else " (replacing an output of other settings)" if stale else ""))
    echo(describe_manifest(synthesize(options), synthetic))
    return _timed("synthesize", "resumed" if resume else "ran", f"{expected.plan.n:,} images", started)


def _recorded_settings(location):
    """The settings the output's state or manifest records; None where there are none or they are unreadable."""
    from gen_aug.output.manifest import previous_settings

    try:
        return previous_settings(location)
    except GenaugError:
        return None


def evaluation_options(job: Job, synthetic: str, report: Path,
                       synthetic_outputs: tuple[str, ...] = ()) -> EvaluationOptions:
    """The `genaug evaluate` options of a job's [evaluate] section, with what the job decides filled in;
    `synthetic_outputs`: the output of each point of the job's synthesis grid."""
    section = job.evaluate
    real = section.real if section.real is not None else job.data.spec
    return dataclasses.replace(section, real=real, synthetic=synthetic, report=str(report), device=job.train.device,
                               synthetic_outputs=synthetic_outputs)


def _evaluate_stage(job: Job, synthetic: str, report: Path, echo,
                    synthetic_outputs: tuple[str, ...] = ()) -> tuple[StageResult, EvaluationResult]:
    from gen_aug.evaluation.evaluate import describe_evaluation, evaluate, evaluation_inputs, manifest_sha256
    from gen_aug.evaluation.report import REPORT_JSON, read_report

    started = time.perf_counter()
    options = evaluation_options(job, synthetic, report, synthetic_outputs)
    inputs = evaluation_inputs(options, manifest_sha256(synthetic))
    previous = read_report(report / REPORT_JSON)
    if previous is not None and previous.inputs == inputs:
        return _timed("evaluate", "skipped", f"{report / REPORT_JSON} has the same inputs", started), previous
    echo(f"== evaluate {synthetic} against {options.real}")
    result, folder = evaluate(options, log=echo)
    echo(describe_evaluation(result, folder))
    return _timed("evaluate", "ran", f"report in {folder}", started), result


def describe_stages(stages: list[StageResult]) -> str:
    return "\n".join(f"{s.stage:<11} {s.action:<8} {s.seconds:>7.1f} s  {s.why}" for s in stages)
