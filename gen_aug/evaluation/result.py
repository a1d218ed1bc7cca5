"""An evaluation's numbers as frozen records; `to_dict` is report.json, key for key, and `from_dict` reads one back.

Field names are report.json's keys, so one generic pair of functions converts every record; a
report written by any genaug since `genaug evaluate` existed reads back (fields added since have
defaults, and the one reshaped, `augmentation`, is upgraded).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass

from gen_aug.classifiers.classifier import ClassifierConfig


@dataclass(frozen=True, kw_only=True)
class SetSummary:
    description: str  # the normalised spec (or description) of the set
    images: int  # images in the set
    fingerprint: str  # sha256 of pixels, labels and class names
    class_counts: tuple[int, ...]  # images per class, in class order


@dataclass(frozen=True, kw_only=True)
class EvaluatedSets:
    real_train: SetSummary  # trains the reference classifier and every real arm
    real_test: SetSummary  # tests every classifier; the real side of every distance
    synthetic: SetSummary  # the synthesis output under evaluation


@dataclass(frozen=True, kw_only=True)
class EvaluationSettings:
    seeds: tuple[int, ...]  # one classifier per seed for each arm, paired by seed
    classifier: ClassifierConfig  # every arm's classifier and budget, and the reference classifier's
    network: str = "small-cnn"  # the arms' network: small-cnn (the reference CNN) or resnet18
    arms: tuple[str, ...] = ("real", "synthetic")  # the arms trained (reports before --arms: these two)
    metric: str = "accuracy"  # the verdict's metric
    mix: str = "proportional"  # how synthetic images were drawn per class
    mix_ratio: float  # synthetic images added per real training image (balance: beyond the largest class)
    real_share: float | None = None  # real images repeated to about this share of the mix (reports before it: None)
    policy: str = "trivialaugment"  # the classical arms' torchvision policy
    flip: bool = False  # whether the classical arms flip images left-right
    sample_size: int  # at most this many images per set for the distances
    sample_seed: int  # which images those are
    k: int  # neighbours for precision/recall
    threads_per_run: int | None = None  # torch threads of every classifier run (reports before parallel runs: None)


@dataclass(frozen=True, kw_only=True)
class ReferenceScore:
    test_accuracy: float  # share of real test images the reference classifier gets right
    per_class_recall: tuple[float | None, ...]  # the same per class; None for a class without test images
    seed: int  # the reference classifier's seed
    cache_key: str  # where the cache keeps it


@dataclass(frozen=True, kw_only=True)
class ClassConsistency:
    overall: float | None  # share of synthetic images the reference classifier puts in their class; None: no images
    per_class: tuple[float | None, ...]  # the same per class


@dataclass(frozen=True, kw_only=True)
class FrechetDistances:
    overall: float  # real test vs synthetic, in reference-classifier features
    per_class: tuple[float | None, ...]  # the same per class; None where a side has fewer than 2 images
    real_train_vs_test: float  # real test vs real train: the scale the others read against


@dataclass(frozen=True, kw_only=True)
class PrecisionRecall:
    precision: float  # share of the second set inside the first set's k-NN manifold
    recall: float  # share of the first set inside the second set's
    k: int  # neighbours that set each ball's radius


@dataclass(frozen=True, kw_only=True)
class PrecisionRecallWithBaseline(PrecisionRecall):
    real_train_vs_test: PrecisionRecall  # real test vs real train: the scale the others read against


@dataclass(frozen=True, kw_only=True)
class Score:
    mean: float | None  # over seeds; None where the metric is undefined (AUC without every test class)
    std: float | None  # sample standard deviation over seeds (0 for one seed)
    per_seed: tuple[float | None, ...]  # in seed order


@dataclass(frozen=True, kw_only=True)
class Difference:
    to: str  # the arm it is paired with, seed by seed: real or classical
    metric: str  # accuracy, balanced_accuracy, macro_f1 or auc
    mean_points: float | None  # mean over seeds of (this arm - that arm), in points (100 x the metric)
    low_points: float | None  # 95% confidence interval of that mean, t distribution over seeds; None: one seed
    high_points: float | None
    verdict: str  # helps, no detectable effect, hurts (from the interval), or n/a


@dataclass(frozen=True, kw_only=True)
class ArmSummary:
    name: str = ""  # real, classical, synthetic, ...; tstr for the synthetic-only run
    training: str = ""  # what it trains on, in words
    train_images: int  # images of the training set (repeats counted)
    class_counts: tuple[int, ...] = ()  # of the training set, per class
    sampled_shares: tuple[float, ...] = ()  # each class's share of the batches drawn (equal when class-balanced)
    pretrain_images: int = 0  # synthetic images it was trained on before fine-tuning on real (pretrain arm)
    accuracy: Score  # real test accuracy
    balanced_accuracy: Score | None = None  # mean of per-class recall (reports before --arms: None)
    macro_f1: Score | None = None  # unweighted mean of per-class F1
    auc: Score | None = None  # one-vs-rest ROC AUC, macro average (binary: the usual AUC)
    per_class_recall_mean: tuple[float | None, ...]  # mean over seeds; None for a class without test images
    per_class_recall_std: tuple[float | None, ...]  # standard deviation over seeds
    differences: tuple[Difference, ...] = ()  # paired with real and with classical, every metric

    def score(self, metric: str) -> Score | None:
        return getattr(self, metric)

    def difference(self, to: str, metric: str) -> Difference | None:
        return next((d for d in self.differences if d.to == to and d.metric == metric), None)


@dataclass(frozen=True, kw_only=True)
class Mixing:
    mix: str = "proportional"  # proportional: ratio x each class's real count; balance: every class to one count
    ratio: float  # synthetic images asked per real training image (balance: per image of the largest class)
    real_share: float | None = None  # the share the real images were repeated to; None: each once
    real_repeats: int = 1  # copies of the real images in the mix (reports before --real-share: 1)
    synthetic_images_added: int  # synthetic images in the mix
    synthetic_per_class: tuple[int, ...] = ()  # the same per class (reports before --mix: not recorded)
    # What the mix asked of each class; a class the output has fewer of gives all it has (older reports: not recorded)
    synthetic_wanted_per_class: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ClassPrior:
    real_train: tuple[float, ...]  # each class's share of the real train images
    real_test: tuple[float, ...]  # and of the test images
    distance: float  # total variation between the two: half the sum of absolute share differences
    shifted: bool  # distance above PRIOR_SHIFT_TOLERANCE: a change of class shares alone can move a score
    points_per_test_image: float  # what one test image is worth in accuracy points
    points_per_rarest_test_image: float  # and in balanced-accuracy points, an image of the rarest test class


@dataclass(frozen=True, kw_only=True)
class NearestPair:
    synthetic_index: int  # index in the synthetic set
    real_index: int  # index of its nearest real train image
    distance: float  # between them, in the space of the record holding it


@dataclass(frozen=True, kw_only=True)
class NearestReal:
    space: str  # features (the reference classifier's penultimate layer) or pixels (in [0, 1])
    threshold: float  # the percentile of real train images' distances to their nearest other train image
    share_below: float  # share of the synthetic images whose nearest real train image is no farther than that
    per_class: tuple[float | None, ...]  # the same per synthetic class; None for a class without synthetic images
    real_test_share_below: float  # the same share for real test images: what images that copy nothing give
    closest: tuple[NearestPair, ...]  # the closest pairs, closest first


@dataclass(frozen=True, kw_only=True)
class Memorisation:
    percentile: float  # of the train-to-train nearest-neighbour distances that sets each threshold
    synthetic_images: int  # synthetic images compared (at most sample_size)
    real_images: int  # real train images compared against (all of them)
    features: NearestReal
    pixels: NearestReal


@dataclass(frozen=True, kw_only=True)
class TunedPoint:
    settings: Mapping  # one point of the grid: setting -> value
    arms: tuple[str, ...]  # the arms it changes, trained at it
    means: tuple[float | None, ...]  # each arm's validation score, mean over the seeds, in the verdict's metric

    def best(self) -> float:
        return max((mean for mean in self.means if mean is not None), default=float("-inf"))


@dataclass(frozen=True, kw_only=True)
class Tuning:
    validation: SetSummary  # the set every point was scored on: never the test set
    metric: str  # the score's metric: the verdict's
    grid: Mapping  # setting -> the values tried
    points: tuple[TunedPoint, ...]  # every combination, in grid order
    chosen: Mapping  # the point whose best arm scored highest on validation: the settings the test split saw


@dataclass(frozen=True, kw_only=True)
class EvaluationResult:
    genaug_version: str  # the genaug that measured it
    class_names: tuple[str, ...]  # class order of every per-class tuple
    data: EvaluatedSets
    settings: EvaluationSettings
    reference_classifier: ReferenceScore
    class_consistency: ClassConsistency
    frechet_distance: FrechetDistances
    precision_recall: PrecisionRecallWithBaseline  # real test vs synthetic
    tstr: ArmSummary  # trained on synthetic only
    mixing: Mixing  # the synthetic share of the synthetic arms
    arms: tuple[ArmSummary, ...]  # in the order asked, real first
    prior: ClassPrior | None = None  # class shares of train and test (reports before --arms: None)
    memorisation: Memorisation | None = None  # synthetic images near copies of real ones (before --arms: None)
    tuning: Tuning | None = None  # the grid scored on validation and the settings chosen; None: nothing tuned
    inputs: Mapping | None = None  # what decides the numbers (JSON, compared as is by `genaug run`); None: not known

    def to_dict(self) -> dict:
        """What report.json holds: every field under its own name, `inputs` left out when unknown."""
        plain = _plain(self)
        if self.inputs is None:
            del plain["inputs"]
        return plain

    @classmethod
    def from_dict(cls, table: Mapping) -> "EvaluationResult":
        """The record of a report.json's contents; KeyError or TypeError when a key is missing or of another shape.

        A report from before --arms holds `augmentation` (real only, real + synthetic): it reads back
        as the arms real and synthetic, with the metrics it had (accuracy, per-class recall).
        """
        if "augmentation" in table and "arms" not in table:
            table = _upgraded(table)
        return _record(cls, table)

    def arm(self, name: str) -> ArmSummary | None:
        return next((arm for arm in self.arms if arm.name == name), None)


def _upgraded(table: Mapping) -> dict:
    """A report.json from before --arms in today's shape."""
    old = table["augmentation"]
    mixing = {key: old[key] for key in ("ratio", "real_share", "real_repeats", "synthetic_images_added") if key in old}
    arms = [_upgraded_arm(old["real_only"], "real"), _upgraded_arm(old["real_plus_synthetic"], "synthetic")]
    rest = {key: value for key, value in table.items() if key != "augmentation"}
    return {**rest, "tstr": _upgraded_arm(table["tstr"], "tstr"), "mixing": mixing, "arms": arms}


def _upgraded_arm(old: Mapping, name: str) -> dict:
    accuracy = {"mean": old["accuracy_mean"], "std": old["accuracy_std"], "per_seed": old["accuracy_per_seed"]}
    kept = ("train_images", "per_class_recall_mean", "per_class_recall_std")
    return {"name": name, "accuracy": accuracy, **{key: old[key] for key in kept}}


def _plain(value):
    if dataclasses.is_dataclass(value):
        return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    return value


def _record(kind, value):
    """`value` (parsed JSON) as type `kind`: records from tables, tuples from lists, anything else as it is."""
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, Mapping):
            raise TypeError(f"{value!r} (expected a table for {kind.__name__})")
        hints = typing.get_type_hints(kind)
        fields = [field.name for field in dataclasses.fields(kind) if field.name in value]
        return kind(**{name: _record(hints[name], value[name]) for name in fields})
    if typing.get_origin(kind) is tuple:
        return tuple(_record(typing.get_args(kind)[0], item) for item in value)
    if isinstance(kind, types.UnionType) and value is not None:  # X | None: a record of X when given
        return _record(next(arg for arg in typing.get_args(kind) if arg is not type(None)), value)
    return value
