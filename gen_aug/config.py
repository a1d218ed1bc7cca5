"""Job files (jobs/*.toml) as frozen dataclasses, one per section; unknown or mistyped keys are errors."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gen_aug.checks import checked, from_dict, require
from gen_aug.errors import GenaugError
from gen_aug.evaluation.options import EvaluationOptions
from gen_aug.synthesis.options import SynthesisOptions

DATA_DERIVED_KEYS = ("resolution", "channels", "num_classes")  # model keys the training data decides


@dataclass(frozen=True)
class DataSection:
    spec: str = "builtin:digits"  # KIND:PATH[?OPTIONS], as `genaug data` takes it
    source: str | None = None  # where the spec's files come from, named when they are missing

    def check_found(self, job: str) -> None:
        """A spec whose file or folder is not there is one line saying what the job expects and how to point it."""
        from gen_aug.data import parse_spec

        spec = parse_spec(self.spec)
        if spec.kind == "builtin" or os.path.exists(spec.path):
            return
        wanted = self.source or "the job's data"
        raise GenaugError(
            f"job {job} [data] spec {self.spec!r}: no such file or folder (expected {wanted}; GENAUG_DATA=FOLDER "
            f"points a shipped job at the folder holding it, --set data.spec={spec.kind}:PATH at any copy)"
        )


@dataclass(frozen=True)
class ModelSection:
    family: str = "cgan"  # a registered model family: cgan, cvae or cdm
    options: Mapping = dataclasses.field(default_factory=dict)  # the family's config keys, less the data-derived

    @classmethod
    def from_table(cls, table: Mapping, where: str) -> "ModelSection":
        from gen_aug.models import model_class
        from gen_aug.models.layers import MAX_RESOLUTION

        family = checked(str, table.get("family", cls.family), f"{where}: family = {table.get('family')!r}")
        options = {key: value for key, value in table.items() if key != "family"}
        try:
            config_class = model_class(family).config_class
        except GenaugError as error:
            raise GenaugError(f"{where}: {error}") from None
        for key in DATA_DERIVED_KEYS:
            if key in options:
                raise GenaugError(f"{where}: {key} comes from the training data (expected it absent; resize with ?resolution=R)")
        # Check names and types now, against placeholder data sizes; training fills in the real ones. The largest
        # size admits every depth a family allows at some size (the U-Net's levels): the data's is checked in train.
        placeholder = {"resolution": MAX_RESOLUTION, "channels": 1, "num_classes": 2}
        from_dict(config_class, placeholder | options, f"{where} ({family})")
        return cls(family, options)


@dataclass(frozen=True)
class TrainConfig:
    out: str | None = None  # run folder: model.safetensors, train_state.pt, log.jsonl, preview_*.png
    steps: int = 3000  # optimiser steps in all (a resumed run continues up to this many)
    batch_size: int = 64  # real images per step
    seed: int = 0  # model initialisation, batches, latents, augmentation
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when visible
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on cuda, fp32 on cpu
    log_every: int = 100  # steps between log.jsonl lines (losses averaged over them)
    preview_every: int = 1000  # steps between preview grids
    checkpoint_every: int = 1000  # steps between snapshot + resume state writes (and at the end)
    preview_per_class: int = 10  # preview grid columns

    def __post_init__(self):
        for key in ("steps", "batch_size", "log_every", "preview_every", "checkpoint_every", "preview_per_class"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "1 or more")
        require(self.seed >= 0, "seed", self.seed, "0 or more")


@dataclass(frozen=True)
class Job:
    """One section per stage; a section left out of a job file takes these defaults (the digits job)."""

    data: DataSection = DataSection()
    model: ModelSection = ModelSection()
    train: TrainConfig = TrainConfig()
    synthesize: SynthesisOptions = SynthesisOptions()  # `genaug synthesize`'s; the job gives model, data, gpus
    evaluate: EvaluationOptions = EvaluationOptions()  # `genaug evaluate`'s; the job gives synthetic and device


# ${NAME:-default} in a job's strings: the environment's NAME, or the default where it is unset or empty.
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_job(path: str | os.PathLike, overrides: tuple[str, ...] = ()) -> Job:
    """Read a TOML job file; every unknown section or key, wrong type or bad value is an error naming the file.

    Strings may hold ${NAME:-default} (the shipped jobs' data folders: ${GENAUG_DATA:-../shared/data/...});
    `overrides` are 'SECTION.KEY=VALUE' settings that replace the file's (`genaug run --set`).
    """
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GenaugError(f"job {path}: no such file (expected a TOML job such as jobs/digits.toml)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, IsADirectoryError) as error:
        raise GenaugError(f"job {path}: not valid TOML ({error})") from None
    document = _expand(document, path)
    _apply_overrides(document, overrides)
    sections = {field.name: field.type for field in dataclasses.fields(Job)}
    for name, table in document.items():
        if name not in sections:
            raise GenaugError(f"job {path}: unknown section [{name}] (expected {', '.join(f'[{s}]' for s in sections)})")
        if not isinstance(table, dict):
            raise GenaugError(f"job {path}: {name} = {table!r} (expected a [{name}] section)")
    hints = typing.get_type_hints(Job)
    parsed = {}
    for name, table in document.items():
        where, section = f"job {path} [{name}]", hints[name]
        parsed[name] = section.from_table(table, where) if hasattr(section, "from_table") else from_dict(section, table, where, job=True)
    return Job(**parsed)


def _expand(value, path: Path):
    """The job's values with ${NAME:-default} replaced in every string."""
    if isinstance(value, dict):
        return {key: _expand(item, path) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, path) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        found = os.environ.get(match.group(1))
        if found:
            return found
        if match.group(2) is None:
            raise GenaugError(f"job {path}: ${{{match.group(1)}}} is not set (expected it in the environment, or a "
                              f"default as ${{{match.group(1)}:-VALUE}})")
        return match.group(2)

    return _VARIABLE.sub(replace, value)


def _apply_overrides(document: dict, overrides: tuple[str, ...]) -> None:
    """Each 'SECTION.KEY=VALUE' into the document (VALUE read as TOML, else as a string). Keys that repeated the data
    spec word for word (a variants job's sources, the evaluation's real set) follow a new one unless set too."""
    keys = [text.partition("=")[0].strip() for text in overrides]
    for text in overrides:
        name, sep, value = text.partition("=")
        section, dot, key = name.strip().partition(".")
        if not sep or not dot or not section or not key or "." in key:
            raise GenaugError(f"--set {text!r}: not SECTION.KEY=VALUE (expected e.g. data.spec=npz:breastmnist.npz "
                              "or train.steps=500)")
        try:
            parsed = tomllib.loads(f"value = {value}")["value"]
        except tomllib.TOMLDecodeError:
            parsed = value.strip()  # a bare word: a path, a data spec
        table = document.setdefault(section, {})
        if not isinstance(table, dict):
            raise GenaugError(f"--set {text!r}: {section} is not a section of the job (expected [{section}])")
        was, table[key] = table.get(key), parsed
        if (section, key) == ("data", "spec"):
            for follower in ("synthesize.variants_of", "evaluate.real"):
                other_section, _, other_key = follower.partition(".")
                other = document.get(other_section)
                if isinstance(other, dict) and was is not None and other.get(other_key) == was and follower not in keys:
                    other[other_key] = parsed


def job_with_overrides(
    job_path: str | os.PathLike | None, data_spec: str | None = None, family: str | None = None, **train_options
) -> Job:
    """The job file's sections (or the defaults), with every option given on the command line taking precedence."""
    job = load_job(job_path) if job_path is not None else Job()
    data = DataSection(data_spec) if data_spec is not None else job.data
    model = job.model
    if family is not None and family != model.family:
        from gen_aug.models import model_class

        model_class(family)  # an unknown name is its own error, whatever the job says
        model = ModelSection.from_table({"family": family, **model.options}, f"--model {family} with the job's [model] keys")
    given = {key: value for key, value in train_options.items() if value is not None}
    try:
        train = dataclasses.replace(job.train, **given)
    except GenaugError as error:
        raise GenaugError(f"command line: {error}") from None
    return dataclasses.replace(job, data=data, model=model, train=train)
