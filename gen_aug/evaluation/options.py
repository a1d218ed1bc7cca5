"""The options of an evaluation, once: `genaug evaluate` builds them from flags, a job's [evaluate] section from keys.

It imports no torch, so the command line and job files can read the defaults without loading it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from gen_aug.checks import NOT_IN_JOB, require
from gen_aug.errors import GenaugError

if TYPE_CHECKING:
    from gen_aug.classifiers.classifier import ClassifierConfig

# Every arm trains the same classifier for the same steps on its own training set; see arms.py.
ARMS = ("real", "classical", "synthetic", "classical+synthetic", "top-up", "pretrain", "reweighted", "variants",
        "classical+variants", "class-mix", "classical+class-mix", "distill")
CLASS_MIX_ARMS = ("class-mix", "classical+class-mix")  # they need a --variants-of --mix-classes output
VARIANT_ARMS = ("variants", "classical+variants", *CLASS_MIX_ARMS)  # a --variants-of output of the real train split
# The settings a job may choose on validation (`tune`), and the arms each one changes.
TUNABLE = {"swap_probability": VARIANT_ARMS, "mix_gamma": CLASS_MIX_ARMS,
           "mix_ratio": ("synthetic", "classical+synthetic", "distill")}
# Synthesis settings a job may choose on validation too: `genaug run` makes one output per value (strength: a
# --variants-of job's, guidance: a cdm's), and every arm that trains on synthetic images is scored on each.
USES_SYNTHETIC = tuple(arm for arm in ARMS if arm not in ("real", "classical", "reweighted"))
SYNTHESIS_TUNABLE = {"strength": USES_SYNTHETIC, "guidance": USES_SYNTHETIC}
MAX_TUNED_POINTS = 16  # every point trains its arms once per seed
DEFAULT_ARMS = ("real", "classical", "synthetic", "classical+synthetic")
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auc")
CLASSIFIERS = ("small-cnn", "resnet18")
MIXES = ("proportional", "balance")
POLICIES = ("trivialaugment", "randaugment")


@dataclass(frozen=True, kw_only=True)
class EvaluationOptions:
    real: str | None = None  # data spec whose train split trains every classifier; None in a job: the [data] spec
    test: str | None = None  # data spec of the test set (real's classes and image shape); None: real's test split
    synthetic: str | None = dataclasses.field(default=None, metadata=NOT_IN_JOB)  # a finished `genaug synthesize`
    report: str | None = None  # report folder; None: the synthetic folder's path + '-report' (in a job: <out>/report)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # one classifier per seed for each arm; arms are paired by seed
    steps: int = 1000  # classifier optimiser steps, the same for every training set
    arms: tuple[str, ...] = DEFAULT_ARMS  # training sets compared, each against `real` (and `classical`)
    classifier: Literal["small-cnn", "resnet18"] = "small-cnn"  # every arm's network (the judge is the small CNN)
    metric: Literal["accuracy", "balanced_accuracy", "macro_f1", "auc"] = "accuracy"  # the verdict's metric
    mix: Literal["proportional", "balance"] = "proportional"  # synthetic per class: ratio x real, or fill to largest
    mix_ratio: float = 1.0  # proportional: synthetic per real image; balance: beyond the largest class, per its image
    real_share: float | None = None  # real images repeated to about this share of real + synthetic; None: once
    policy: Literal["trivialaugment", "randaugment"] = "trivialaugment"  # the classical arms' torchvision policy
    flip: bool = False  # classical arms flip images left-right: only where the domain allows it
    swap_probability: float = 0.5  # variants arms: the chance a drawn real image is replaced by one of its variants
    mix_gamma: float = 0.5  # class-mix arms: a variant at strength s is labelled s^gamma its rendered class, the rest its own
    tune: dict[str, tuple[float, ...]] | None = None  # setting -> values, each point scored on validation, one kept
    validation: str | None = None  # data spec the grid is scored on; None: --real's val split (never its test split)
    # With synthesis settings in `tune`: the output made at each of their points, in grid order (`genaug run` fills it).
    synthetic_outputs: tuple[str, ...] = dataclasses.field(default=(), metadata=NOT_IN_JOB)
    jobs: int | None = None  # classifier runs at once, one torch thread each; None: one per usable CPU (1 on a GPU)
    sample_size: int = 2000  # images per set for Fréchet distance, precision/recall and memorisation
    k: int = 3  # neighbours for precision/recall
    device: Literal["auto", "cpu", "cuda"] = dataclasses.field(default="auto", metadata=NOT_IN_JOB)  # auto: cuda if any

    def __post_init__(self):
        require(len(self.seeds) >= 1 and min(self.seeds) >= 0, "seeds", list(self.seeds), "one or more seeds >= 0")
        require(len(set(self.seeds)) == len(self.seeds), "seeds", list(self.seeds), "each seed once")
        require(self.jobs is None or self.jobs >= 1, "jobs", self.jobs, "1 or more")
        for key in ("steps", "k"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "1 or more")
        require(self.sample_size > self.k, "sample_size", self.sample_size, f"more than k = {self.k}")
        require(self.mix_ratio >= 0, "mix_ratio", self.mix_ratio, "0 or more")
        require(0 <= self.swap_probability <= 1, "swap_probability", self.swap_probability, "a probability, 0 to 1")
        require(0 < self.mix_gamma <= 10, "mix_gamma", self.mix_gamma, "above 0, at most 10")
        require(all(arm in ARMS for arm in self.arms) and len(set(self.arms)) == len(self.arms), "arms",
                list(self.arms), f"each at most once of {', '.join(ARMS)}")
        require("real" in self.arms, "arms", list(self.arms), "'real' among them: every arm is paired with it")
        if "distill" in self.arms:  # its teacher is the same seed's classical classifier
            require("classical" in self.arms, "arms", list(self.arms), "'classical' among them: distill's teacher")
        require(self.classifier in CLASSIFIERS, "classifier", self.classifier, " or ".join(CLASSIFIERS))
        require(self.metric in METRICS, "metric", self.metric, ", ".join(METRICS))
        require(self.mix in MIXES, "mix", self.mix, " or ".join(MIXES))
        require(self.policy in POLICIES, "policy", self.policy, " or ".join(POLICIES))
        if self.tune is not None:
            self._check_tune()
        if self.real_share is not None:
            require(0 < self.real_share < 1, "real_share", self.real_share, "a fraction between 0 and 1")
            # Repeating the real images would undo the class balance the balance mix sets up.
            require(self.mix == "proportional", "real_share", self.real_share, "none with mix = 'balance'")

    def _check_tune(self) -> None:
        for key, values in self.tune.items():
            require(key in TUNABLE or key in SYNTHESIS_TUNABLE, "tune", key,
                    f"settings among {', '.join([*TUNABLE, *SYNTHESIS_TUNABLE])}")
            require(len(values) >= 1 and len(set(values)) == len(values), f"tune {key}", list(values),
                    "one or more values, each once")
            for value in values:  # each must be a setting the options (or the synthesis) accept
                if key == "strength":
                    require(0 <= value <= 1, "tune strength", value, "a strength from 0 to 1")
                elif key == "guidance":
                    require(0 <= value < float("inf"), "tune guidance", value, "0 or a finite weight above")
                else:
                    dataclasses.replace(self, tune=None, **{key: value})
        points = 1
        for values in self.tune.values():
            points *= len(values)
        require(1 <= points <= MAX_TUNED_POINTS, "tune", dict(self.tune), f"1 to {MAX_TUNED_POINTS} combinations")

    def classifier_config(self) -> ClassifierConfig:
        """The ClassifierConfig every training set gets (the reference classifier of --min-confidence too)."""
        from gen_aug.classifiers.classifier import ClassifierConfig

        return ClassifierConfig(steps=self.steps)

    def report_dir(self) -> Path:
        if self.report is not None:
            return Path(self.report)
        if "://" in self.synthetic:
            raise GenaugError(f"--synthetic {self.synthetic!r}: a URI (expected --report DIR for the report's folder)")
        return Path(self.synthetic.rstrip("/") + "-report")
