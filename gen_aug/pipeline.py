"""`genaug run JOB.toml`: train, synthesize and evaluate in one go, each stage skipped when its output is already complete.

Complete means: the snapshot has the job's steps, model and data; the synthesis manifest has the
job's plan, format, snapshot and filter and every shard verifies; report.json was computed from the
same real data, synthetic manifest and settings. A stage that runs makes every later stage's
output stale, and the checks see that, since each names the output of the one before by hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gen_aug.config import Job
from gen_aug.errors import GenaugError


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


def run_job(job: Job, echo: Callable[[str], None] = print) -> tuple[list[StageResult], dict | None, Path]:
    """Run the job's stages in order; returns (what each stage did, the evaluation result, the report folder)."""
    from gen_aug.data import load_data
    from gen_aug.train import SNAPSHOT_NAME

    run, synthetic, report = job_paths(job)
    data = load_data(job.data.spec)
    stages = [_train_stage(job, data, echo)]
    stages.append(_synthesize_stage(job, run / SNAPSHOT_NAME, synthetic, echo))
    evaluation, result = _evaluate_stage(job, synthetic, report, echo)
    stages.append(evaluation)
    return stages, result, report


def _timed(stage: str, action: str, why: str, started: float) -> StageResult:
    return StageResult(stage, action, round(time.perf_counter() - started, 1), why)


def _train_stage(job: Job, data, echo) -> StageResult:
    from gen_aug.checkpoint import read_snapshot_meta
    from gen_aug.train import SNAPSHOT_NAME, STATE_NAME, describe_summary, train_job

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
    """The `genaug synthesize` options of a job's [synthesize] section."""
    from gen_aug.evaluation.classifier import ClassifierConfig
    from gen_aug.synthesis.driver import SynthesisOptions

    section = job.synthesize
    return SynthesisOptions(
        str(snapshot), synthetic, n=section.n, class_weights=section.class_weights, data=job.data.spec,
        shard_size=section.shard_size, seed=section.seed, workers=section.workers, image_format=section.format,
        gpus=0 if job.train.device == "cpu" else None, min_confidence=section.min_confidence,
        # The filter's judge is the evaluation's reference classifier: one network, trained once and cached.
        classifier=dataclasses.replace(ClassifierConfig(), steps=job.evaluate.steps),
    )


def _synthesize_stage(job: Job, snapshot: Path, synthetic: str, echo) -> StageResult:
    from gen_aug.synthesis.manifest import JOB_FILE, MANIFEST, describe_manifest, read_json, verify
    from gen_aug.synthesis.storage import open_location
    from gen_aug.synthesis.driver import synthesize

    started = time.perf_counter()
    options = synthesis_options(job, snapshot, synthetic)
    expected = _expected_synthesis(options, snapshot)
    location = open_location(synthetic)
    if location.exists(MANIFEST) and _same_synthesis(read_json(location, MANIFEST), expected):
        if verify(synthetic).ok:
            return _timed("synthesize", "skipped", f"{synthetic} verifies and has the job's settings", started)
    resume = location.exists(JOB_FILE) and _same_synthesis(read_json(location, JOB_FILE), expected)
    stale = not resume and not location.is_empty()
    options = dataclasses.replace(options, resume=resume, overwrite=stale)
    echo(f"== synthesize {options.n:,} images into {synthetic}"
         + (" (resuming)" if resume else " (replacing an output of other settings)" if stale else ""))
    echo(describe_manifest(synthesize(options), synthetic))
    return _timed("synthesize", "resumed" if resume else "ran", f"{options.n:,} images", started)


def _expected_synthesis(options, snapshot: Path) -> dict:
    """What a synthesis output of these options records: plan, format, snapshot hash and filter identity."""
    from gen_aug.checkpoint import read_snapshot_meta
    from gen_aug.synthesis.driver import job_plan

    payload = snapshot.read_bytes()
    meta = read_snapshot_meta(payload, f"snapshot {snapshot}")
    expected = {
        "plan": job_plan(options, tuple(meta["class_names"])).to_dict(),
        "format": options.image_format,
        "snapshot_sha256": hashlib.sha256(payload).hexdigest(),
        "filter": None,
    }
    if options.min_confidence is not None:
        from gen_aug.evaluation.classifier import cache_key
        from gen_aug.data import load_data, parse_spec
        from gen_aug.evaluation.metrics import REFERENCE_SEED

        train = load_data(dataclasses.replace(parse_spec(options.data), split="train"))
        expected["filter"] = {
            "min_confidence": options.min_confidence,
            "classifier_key": cache_key(train, options.classifier, REFERENCE_SEED),
        }
    return expected


def _same_synthesis(record: dict, expected: dict) -> bool:
    found_filter = record.get("filter")
    if expected["filter"] is None or found_filter is None:
        same_filter = expected["filter"] is found_filter
    else:
        same_filter = all(found_filter.get(key) == value for key, value in expected["filter"].items())
    return same_filter and all(record.get(key) == expected[key] for key in ("plan", "format", "snapshot_sha256"))


def evaluation_options(job: Job, synthetic: str, report: Path):
    """The `genaug evaluate` options of a job's [evaluate] section."""
    from gen_aug.evaluation.evaluate import EvaluationOptions

    section = job.evaluate
    return EvaluationOptions(
        section.real if section.real is not None else job.data.spec, synthetic, str(report), section.seeds,
        section.steps, section.mix_ratio, section.sample_size, section.k, job.train.device, section.real_share,
    )


def _evaluate_stage(job: Job, synthetic: str, report: Path, echo) -> tuple[StageResult, dict]:
    import json

    from gen_aug.evaluation.evaluate import REPORT_JSON, describe_evaluation, evaluate, evaluation_inputs, manifest_sha256

    started = time.perf_counter()
    options = evaluation_options(job, synthetic, report)
    inputs = evaluation_inputs(options, manifest_sha256(synthetic))
    previous = report / REPORT_JSON
    if previous.is_file():
        try:
            result = json.loads(previous.read_text())
        except ValueError:
            result = {}
        if isinstance(result, dict) and result.get("inputs") == inputs:
            return _timed("evaluate", "skipped", f"{previous} has the same inputs", started), result
    echo(f"== evaluate {synthetic} against {options.real}")
    result, folder = evaluate(options, log=echo)
    echo(describe_evaluation(result, folder))
    return _timed("evaluate", "ran", f"report in {folder}", started), result


def describe_stages(stages: list[StageResult]) -> str:
    return "\n".join(f"{s.stage:<11} {s.action:<8} {s.seconds:>7.1f} s  {s.why}" for s in stages)
