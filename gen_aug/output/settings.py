"""JobSettings: everything that decides a synthesis output's bytes, in one frozen record.

The driver builds it, workers generate from it, the state file and the manifest store it, and
`--resume` and `genaug run` compare it: an output is continued or kept only when every field matches.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

from gen_aug.errors import GenaugError
from gen_aug.output.formats import FORMATS
from gen_aug.output.plan import Plan


@dataclass(frozen=True)
class FilterSettings:
    """--min-confidence or --select useful: which judge kept which images, and by which rule."""

    min_confidence: float | None  # 'confident': own-class probability an image needs; None for 'useful'
    data: str  # description of the real train split the judge learnt
    classifier_key: str  # the judge's cache key: its data fingerprint, config and seed
    classifier_sha256: str  # of the judge's safetensors weights
    classifier: Mapping  # the judge's config and architecture, as classifier_meta gives it
    # 'confident': the first candidate the judge is min_confidence sure of (filter.py); 'useful': the least sure
    # candidate of a round that the judge labels right, inside its class's real spread (selection.py).
    select: str = "confident"
    candidates_per_round: int = 1  # 'useful': candidates judged together for each image
    centroids: tuple[tuple[float, ...], ...] = ()  # 'useful': each class's mean judge feature of real train images
    radii: tuple[float, ...] = ()  # 'useful': the distance to its centroid within which 95% of a class's real images lie

    def __post_init__(self):
        # Records read back from JSON hold lists: tuples keep two equal settings equal.
        object.__setattr__(self, "centroids", tuple(tuple(float(x) for x in row) for row in self.centroids))
        object.__setattr__(self, "radii", tuple(float(r) for r in self.radii))

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "classifier": dict(self.classifier),
                "centroids": [list(row) for row in self.centroids], "radii": list(self.radii)}

    @classmethod
    def from_dict(cls, record: object, where: str) -> "FilterSettings":
        try:
            settings = cls(**record)
        except (TypeError, ValueError):
            settings = None
        if settings is None or settings.select not in ("confident", "useful") or (
                settings.select == "useful" and not (settings.candidates_per_round >= 1 and settings.radii and
                                                     len(settings.centroids) == len(settings.radii))):
            raise GenaugError(f"{where}: filter {record!r:.80} (expected the record of a --min-confidence or "
                              "--select useful job)")
        return settings

    def rule(self) -> str:
        """What an image had to be to be kept, in a few words."""
        if self.select == "useful":
            return (f"the least sure of {self.candidates_per_round} candidates that the judge labels right, "
                    "within its class's real spread")
        return f"own-class probability >= {self.min_confidence:g}"


# The columns a --variants-of job stores beside each image, and their `datasets` dtypes; `label` is the class
# each was rendered under.
VARIANT_COLUMNS = {"source_split": "string", "source_index": "int64", "source_label": "int64", "variant": "int64",
                   "strength": "float64"}


@dataclass(frozen=True)
class VariantSettings:
    """--variants-of: the real images a job varies, how many variants of each, and how far."""

    data: str  # the normalised spec of the source images, their split included
    split: str  # that split's name, which each row records
    data_sha256: str  # the sources' fingerprint (pixels, labels, classes): --resume refuses changed source data
    source_counts: tuple[int, ...]  # source images of each class
    per_image: int  # variants of each source image at each strength
    strengths: tuple[float, ...]  # shares of the sampler's path each variant runs
    mix_classes: bool = False  # each rendered under another class than its source's (variant_job.py says which)
    # With mix_classes: the (source class, target class) pairs rendered, each class's sources going to its targets in
    # turn; () renders each class under every other.
    mix_pairs: tuple[tuple[int, int], ...] = ()

    def to_dict(self) -> dict:
        record = {**dataclasses.asdict(self), "source_counts": list(self.source_counts),
                  "strengths": list(self.strengths), "mix_pairs": [list(pair) for pair in self.mix_pairs]}
        if not self.mix_pairs:
            del record["mix_pairs"]  # the records of outputs written before pairs existed stay as they were
        return record

    @classmethod
    def from_dict(cls, record: object, where: str) -> "VariantSettings":
        try:
            settings = cls(str(record["data"]), str(record["split"]), str(record["data_sha256"]),
                           tuple(int(c) for c in record["source_counts"]), int(record["per_image"]),
                           tuple(float(s) for s in record["strengths"]), record.get("mix_classes", False),
                           tuple((int(i), int(j)) for i, j in record.get("mix_pairs", ())))
        except (KeyError, TypeError, ValueError):
            settings = None
        classes = range(len(settings.source_counts)) if settings is not None else range(0)
        if settings is None or not isinstance(settings.mix_classes, bool) or settings.per_image < 1 or not settings.strengths or \
                min(settings.source_counts, default=-1) < 0 or not all(0 <= s <= 1 for s in settings.strengths) or \
                not all(i in classes and j in classes and i != j for i, j in settings.mix_pairs) or \
                (settings.mix_pairs and not settings.mix_classes):
            raise GenaugError(f"{where}: variants {record!r:.80} (expected the sources, count and strengths of a "
                              "--variants-of job)")
        return settings


@dataclass(frozen=True)
class JobSettings:
    plan: Plan
    format: str  # a key of formats.FORMATS
    snapshot_sha256: str  # of the snapshot file the images come from
    # CPU and CUDA kernels round differently, so images are tied to the kind of device and to the fixed
    # number of images per generator call (sampling.GENERATION_CHUNK).
    device: str  # 'cpu' or 'cuda'
    generation_chunk: int
    filter: FilterSettings | None = None  # None: every image from its own index
    # A diffusion snapshot's sampler as this job runs it ({"sampler", "steps", "guidance"}); None for other families.
    sampler: Mapping | None = None
    variants: VariantSettings | None = None  # None: every image from noise

    def to_dict(self) -> dict:
        return {
            "plan": self.plan.to_dict(),
            "format": self.format,
            "snapshot_sha256": self.snapshot_sha256,
            "device": self.device,
            "generation_chunk": self.generation_chunk,
            "filter": None if self.filter is None else self.filter.to_dict(),
            "sampler": None if self.sampler is None else dict(self.sampler),
            "variants": None if self.variants is None else self.variants.to_dict(),
        }

    @classmethod
    def from_dict(cls, record: Mapping, where: str) -> "JobSettings":
        """The settings a state file or manifest recorded; a malformed record is a GenaugError naming `where`."""
        plan = Plan.from_dict(record.get("plan") or {}, where)
        found = record.get("filter")
        job_filter = None if found is None else FilterSettings.from_dict(found, where)
        sampler = record.get("sampler")
        if sampler is not None and not (isinstance(sampler, dict) and set(sampler) == {"sampler", "steps", "guidance"}):
            raise GenaugError(f"{where}: sampler {sampler!r:.80} (expected the sampler, steps and guidance of a cdm job)")
        variants = record.get("variants")
        variants = None if variants is None else VariantSettings.from_dict(variants, where)
        settings = cls(plan, record.get("format"), record.get("snapshot_sha256"), record.get("device"),
                       record.get("generation_chunk"), job_filter, sampler, variants)
        settings._check_schema(where)
        return settings

    def _check_schema(self, where: str) -> None:
        """What makes a record genaug's own: a folder whose records fail this is never treated as a genaug output."""
        sha = self.snapshot_sha256
        problems = [
            self.format not in FORMATS and f"format {self.format!r}",
            not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)) and f"snapshot_sha256 {sha!r:.20}",
            # Outputs from before devices were recorded have neither key: they still read, verify and resume.
            self.device not in ("cpu", "cuda", None) and f"device {self.device!r}",
        ]
        problem = next((p for p in problems if p), None)
        if problem:
            raise GenaugError(f"{where}: {problem} (expected the settings of a genaug synthesis job)")

    def extra_columns(self) -> dict[str, str]:
        """The columns this job stores beside each image, beyond every job's, with their `datasets` dtypes."""
        # --select useful: whether each image passed (1), or kept its most class-like candidate when none did (0).
        useful = {"useful": "int64"} if self.filter is not None and self.filter.select == "useful" else {}
        if self.variants is not None:
            return {**VARIANT_COLUMNS, **useful}
        return {"latent_index": "int64", **useful} if self.filter is not None else {}

    def differences(self, other: "JobSettings") -> list[str]:
        """Names of the fields whose values differ, in field order."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [key for key in mine if mine[key] != theirs[key]]
