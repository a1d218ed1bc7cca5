"""The synthesis plan, a pure function of its options: how many images of each class, their labels and shards."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from gen_aug.data.form import SourceForm
from gen_aug.errors import GenaugError

MAX_SEED = 2**63 - 1  # torch seeds are int64
MAX_IMAGES = 10**9  # keeps label arithmetic (stride x index < n^2) inside int64
MAX_SHARDS = 100_000  # the driver holds a record of every shard, and the state folder a file per shard
# With no shard size given: shards of at most this many images, and enough of them for two per worker, so no
# worker idles and the bar moves in steps; but never under the floor, below which a shard's file, record and
# task cost more than its images (a job that small takes a moment on one worker).
MAX_AUTOMATIC_SHARD_SIZE = 10_000
MIN_AUTOMATIC_SHARD_SIZE = 100
SHARDS_PER_WORKER = 2
_COUNT = re.compile(r"-?[0-9][0-9_]*(\.[0-9]*)?([eE]\+?[0-9]+)?")
# Consecutive indices step through the class-sorted order by about n/phi, which spreads every class
# evenly over the index range (a Weyl sequence), so each shard holds close to the job's class mix.
_INVERSE_GOLDEN_RATIO = (math.sqrt(5) - 1) / 2
# Where Parquet shards lie: 'hub' as a Hugging Face dataset repository (data/train-00000-of-00010.parquet, and
# with --card a README.md at the root) that datasets, Ray Data, pandas and pyarrow open as it is; 'flat'
# (shard-00000.parquet at the root) is how outputs were laid out before, and one recorded without a layout is.
LAYOUTS = ("hub", "flat")


def parse_count(text: str, name: str = "--n") -> int:
    """'1e6', '1000000', '1_000_000' -> 1000000; anything but a whole number from 1 to 1e9 is a GenaugError."""
    expected = f"expected a whole number of images from 1 to {MAX_IMAGES:,}, e.g. 1000, 1e6 or 1_000_000"
    cleaned = str(text).strip()
    if not _COUNT.fullmatch(cleaned) or "__" in cleaned or cleaned.endswith("_"):
        raise GenaugError(f"{name} {text!r}: not a number ({expected})")
    value = float(cleaned.replace("_", ""))
    if not 1 <= value <= MAX_IMAGES:
        raise GenaugError(f"{name} {text!r}: out of range ({expected})")
    if value != int(value):
        raise GenaugError(f"{name} {text!r}: not a whole number ({expected})")
    return int(value)  # exact: every whole float up to 1e9 is


@dataclass(frozen=True)
class Shard:
    shard_idx: int
    start: int  # first global image index
    stop: int  # one past the last

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Plan:
    seed: int
    shard_size: int  # images per shard; the last shard may be shorter
    class_names: tuple[str, ...]
    class_counts: tuple[int, ...]  # images of each class, 0 for classes left out
    layout: str = "hub"  # one of LAYOUTS; it names files, and never changes their bytes
    restore: SourceForm | None = None  # --restore: each image written back at its source's size and depth

    @property
    def n(self) -> int:
        return sum(self.class_counts)

    @property
    def num_shards(self) -> int:
        return math.ceil(self.n / self.shard_size)

    def shard(self, shard_idx: int) -> Shard:
        start = shard_idx * self.shard_size
        return Shard(shard_idx, start, min(self.n, start + self.shard_size))

    def shards(self) -> list[Shard]:
        return [self.shard(i) for i in range(self.num_shards)]

    @property
    def label_stride(self) -> int:
        """The smallest integer >= n/phi that is coprime with n, so index -> position is a bijection."""
        stride = max(1, math.ceil(self.n * _INVERSE_GOLDEN_RATIO))
        while math.gcd(stride, self.n) != 1:
            stride += 1
        return stride

    def positions(self, start: int, stop: int) -> np.ndarray:
        """Where images start..stop-1 lie in the class-sorted order of the job's n images: a permutation of range(n)."""
        return (np.arange(start, stop, dtype=np.int64) * self.label_stride) % self.n

    def labels(self, start: int, stop: int) -> np.ndarray:
        """int64 labels of images start..stop-1: exactly class_counts[c] of class c over the whole job."""
        class_ends = np.cumsum(self.class_counts)
        return np.searchsorted(class_ends, self.positions(start, stop), side="right").astype(np.int64)

    def class_ranks(self, start: int, stop: int) -> np.ndarray:
        """Each of images start..stop-1's rank among its class's images: 0 to class_counts[label] - 1."""
        positions = self.positions(start, stop)
        class_starts = np.cumsum(self.class_counts) - np.asarray(self.class_counts)
        return positions - class_starts[self.labels(start, stop)]

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "seed": self.seed,
            "shard_size": self.shard_size,
            "class_names": list(self.class_names),
            "class_counts": list(self.class_counts),
            "layout": self.layout,
            # Only where asked for: the records of every other output stay as they were.
            **({"restore": self.restore.to_dict()} if self.restore is not None else {}),
        }

    @classmethod
    def from_dict(cls, record: dict, source: str = "plan") -> "Plan":
        try:
            plan = cls(
                int(record["seed"]),
                int(record["shard_size"]),
                tuple(str(name) for name in record["class_names"]),
                tuple(int(count) for count in record["class_counts"]),
                record.get("layout", "flat"),
                None if record.get("restore") is None else SourceForm.from_dict(record["restore"], source),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise GenaugError(
                f"{source}: not a genaug plan ({error!r}; expected seed, shard_size, class_names, class_counts)"
            ) from None
        if plan.n != record.get("n", plan.n) or len(plan.class_counts) != len(plan.class_names):
            raise GenaugError(f"{source}: class counts do not add up (expected one count per class summing to n)")
        if plan.layout not in LAYOUTS:
            raise GenaugError(f"{source}: layout {plan.layout!r:.40} (expected one of {', '.join(LAYOUTS)})")
        if plan.shard_size < 1 or plan.seed < 0 or plan.n < 1 or min(plan.class_counts) < 0:
            raise GenaugError(
                f"{source}: plan with shard_size {plan.shard_size}, seed {plan.seed}, class_counts "
                f"{list(plan.class_counts)} (expected shard_size >= 1, seed >= 0, counts >= 0 summing to 1 or more)"
            )
        # The bounds of a new plan: a tampered record must not make verify or the reader build a huge one.
        if plan.n > MAX_IMAGES or plan.seed > MAX_SEED or math.ceil(plan.n / plan.shard_size) > MAX_SHARDS:
            raise GenaugError(
                f"{source}: plan of {plan.n:,} images in shards of {plan.shard_size:,}, seed {plan.seed} (expected at "
                f"most {MAX_IMAGES:,} images, {MAX_SHARDS:,} shards and seed {MAX_SEED})"
            )
        return plan


def automatic_shard_size(n: int, workers: int, largest: int = MAX_AUTOMATIC_SHARD_SIZE) -> int:
    """Images per shard for `n` images on `workers` workers when none is given: one job and worker count, one size."""
    wanted = math.ceil(n / (SHARDS_PER_WORKER * workers))
    return max(1, min(largest, max(MIN_AUTOMATIC_SHARD_SIZE, wanted)))


def resolve_classes(text: str, class_names: tuple[str, ...], option: str) -> int:
    """A class given by name, or by index when no class has that name."""
    if text in class_names:
        return class_names.index(text)
    if text.isdigit() and int(text) < len(class_names):
        return int(text)
    raise GenaugError(
        f"{option}: unknown class {text!r} "
        f"(expected one of {', '.join(class_names)} or an index 0-{len(class_names) - 1})"
    )


def parse_class_list(text: str, class_names: tuple[str, ...]) -> list[int]:
    """'--classes cat,dog' or '0,2' -> sorted class indices."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise GenaugError(f"--classes {text!r}: empty (expected class names or indices separated by commas)")
    return sorted({resolve_classes(item, class_names, "--classes") for item in items})


def _parse_assignments(text: str, class_names: tuple[str, ...], option: str) -> dict[int, str]:
    assignments: dict[int, str] = {}
    for item in text.split(","):
        name, sep, value = item.strip().rpartition("=")
        if not sep or not name:
            raise GenaugError(f"{option} {text!r}: item {item.strip()!r} is not CLASS=VALUE (expected e.g. 0=3,1=1)")
        label = resolve_classes(name.strip(), class_names, option)
        if label in assignments:
            raise GenaugError(f"{option} {text!r}: class {class_names[label]!r} given twice (expected each class once)")
        assignments[label] = value.strip()
    return assignments


def uniform_counts(n: int, selected: list[int], num_classes: int) -> list[int]:
    """n split evenly over the selected classes; the first n % k of them get one more."""
    counts = [0] * num_classes
    base, remainder = divmod(n, len(selected))
    for rank, label in enumerate(selected):
        counts[label] = base + (1 if rank < remainder else 0)
    return counts


def weighted_counts(n: int, weights: list[float]) -> list[int]:
    """Largest-remainder apportionment of n by weights; ties go to the lower class index."""
    total = sum(weights)
    quotas = [n * w / total for w in weights]
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(weights)), key=lambda c: (-(quotas[c] - counts[c]), c))
    for label in by_remainder[: n - sum(counts)]:
        counts[label] += 1
    return counts


def balancing_counts(n: int, real_counts: list[int], selected: list[int]) -> list[int]:
    """Water-filling: the smallest real classes get synthetic images first, so real + synthetic is as even as can be."""
    def needed(level: int) -> int:
        return sum(max(0, level - real_counts[c]) for c in selected)

    low, high = 0, max(real_counts[c] for c in selected) + n  # needed(high) >= n
    while low < high:  # the highest level that n can fill completely
        middle = (low + high + 1) // 2
        low, high = (middle, high) if needed(middle) <= n else (low, middle - 1)
    counts = [0] * len(real_counts)
    for label in selected:
        counts[label] = max(0, low - real_counts[label])
    # Fewer than len(at_level) images are left: one more each to the lowest-index classes at the level.
    at_level = [c for c in selected if real_counts[c] <= low]
    for label in at_level[: n - sum(counts)]:
        counts[label] += 1
    return counts


def make_plan(
    class_names: tuple[str, ...],
    n: int | None = None,  # total images; may be omitted when per_class says it
    per_class: str | None = None,  # 'K' for K of every selected class, or 'CLASS=K,...'
    class_weights: str | None = None,  # 'balance' or 'CLASS=W,...'
    classes: str | None = None,  # 'CLASS,...' restricts the job to these classes
    real_counts: list[int] | None = None,  # per-class counts of the real set, for class_weights='balance'
    shard_size: int = 10_000,
    seed: int = 0,
) -> Plan:
    """Turn the command-line class options into a Plan; every inconsistency is a one-line GenaugError."""
    num_classes = len(class_names)
    selected = parse_class_list(classes, class_names) if classes is not None else list(range(num_classes))
    if per_class is not None and class_weights is not None:
        raise GenaugError("--per-class and --class-weights: both given (expected at most one)")
    if shard_size < 1:
        raise GenaugError(f"--shard-size {shard_size}: not positive (expected a whole number >= 1)")
    if per_class is not None:
        counts = _per_class_counts(per_class, class_names, selected)
        if n is not None and n != sum(counts):
            raise GenaugError(
                f"--n {n} and --per-class {per_class!r}: disagree ({sum(counts)} images from --per-class; "
                "expected --n left out or equal)"
            )
    elif n is None:
        raise GenaugError("--n: missing (expected --n N, or --per-class K)")
    elif class_weights is None:
        counts = uniform_counts(n, selected, num_classes)
    elif class_weights.strip() == "balance":
        if real_counts is None:
            raise GenaugError("--class-weights balance: needs the real set (expected --data SPEC too)")
        counts = balancing_counts(n, list(real_counts), selected)
    else:
        counts = weighted_counts(n, _explicit_weights(class_weights, class_names, selected))
    check_size(sum(counts), shard_size)
    return Plan(seed, shard_size, tuple(class_names), tuple(counts))


def check_size(total: int, shard_size: int) -> None:
    """A plan's bounds: 1 to MAX_IMAGES images in at most MAX_SHARDS shards."""
    if not 1 <= total <= MAX_IMAGES:
        raise GenaugError(f"plan: {total:,} images in all (expected 1 to {MAX_IMAGES:,})")
    if math.ceil(total / shard_size) > MAX_SHARDS:
        raise GenaugError(
            f"--shard-size {shard_size}: {math.ceil(total / shard_size):,} shards for {total:,} images (expected "
            f"at most {MAX_SHARDS:,} shards: --shard-size {math.ceil(total / MAX_SHARDS):,} or more)"
        )


def _per_class_counts(text: str, class_names: tuple[str, ...], selected: list[int]) -> list[int]:
    if "=" not in text:
        each = parse_count(text, "--per-class")
        return [each if c in selected else 0 for c in range(len(class_names))]
    counts = [0] * len(class_names)
    for label, value in _parse_assignments(text, class_names, "--per-class").items():
        _require_selected(label, selected, class_names, "--per-class")
        counts[label] = 0 if value.strip() == "0" else parse_count(value, f"--per-class {class_names[label]}")
    return counts


def _explicit_weights(text: str, class_names: tuple[str, ...], selected: list[int]) -> list[float]:
    weights = [0.0] * len(class_names)
    for label, value in _parse_assignments(text, class_names, "--class-weights").items():
        _require_selected(label, selected, class_names, "--class-weights")
        try:
            weights[label] = float(value)
        except ValueError:
            weights[label] = -1.0
        if not (math.isfinite(weights[label]) and weights[label] >= 0):
            raise GenaugError(
                f"--class-weights {text!r}: weight {value!r} of class {class_names[label]!r} "
                "(expected a number >= 0)"
            )
    if sum(weights) <= 0:
        raise GenaugError(f"--class-weights {text!r}: all weights are 0 (expected at least one positive weight)")
    return weights


def _require_selected(label: int, selected: list[int], class_names: tuple[str, ...], option: str) -> None:
    if label not in selected:
        raise GenaugError(
            f"{option}: class {class_names[label]!r} is not among --classes (expected one of "
            f"{', '.join(class_names[c] for c in selected)})"
        )
