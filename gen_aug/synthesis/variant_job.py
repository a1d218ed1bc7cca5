"""--variants-of: a synthesis job whose images are variants of real ones, each row naming its source.

Every (strength, variant, source) of a job is one row, rendered under the source's own class or,
with --mix-classes, under another class (Diff-Mix's inter-class variants): variant v of the q-th
source of class i goes to the ((q + v) mod (C - 1))-th class other than i, so each source's
variants and each class's sources spread evenly over the other classes. The plan's class counts
are the rows rendered under each class; without mixing, the sources' times the variants per image
times the strengths, so every class keeps its real share. Row g takes its label from the plan as
in any job; its rank among its class's rows picks the (strength, variant, source) of that class,
sources going round fastest, then the variant numbers, then the strengths. So a row's image
depends on its index alone, as an image from noise does, and every shard holds close to the job's
class mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from gen_aug.errors import GenaugError
from gen_aug.output.plan import Plan, Shard, check_size
from gen_aug.output.settings import FilterSettings, VariantSettings
from gen_aug.variants import MAX_VARIANTS_PER_IMAGE, check_can_vary, variants_uint8

if TYPE_CHECKING:
    from gen_aug.classifiers.classifier import Classifier

# Options that pick images from noise: a variant job's images follow from its sources instead.
_NOT_WITH_VARIANTS = {"per_class": "--per-class", "class_weights": "--class-weights", "classes": "--classes",
                      "min_confidence": "--min-confidence"}


@dataclass(frozen=True)
class VariantSources:
    """The real images a job varies: uint8 (N, C, H, W) and their int64 labels, in their split's order."""

    images: np.ndarray
    labels: np.ndarray


def plan_variants(options, snapshot, shard_size: int) -> tuple[Plan, VariantSettings, VariantSources]:
    """The plan, settings and source images of a --variants-of job; every bad input is a one-line GenaugError."""
    from gen_aug.checkpoint import require_snapshot_data
    from gen_aug.data import load_data, parse_spec

    check_can_vary(snapshot.model, f"--model {options.model!r}")
    given = [flag for key, flag in _NOT_WITH_VARIANTS.items() if getattr(options, key) is not None]
    if given:
        raise GenaugError(f"--variants-of and {given[0]}: both given (expected the variants' count to follow from "
                          "the source images, --per-image and --strength alone)")
    if not 1 <= options.per_image <= MAX_VARIANTS_PER_IMAGE:
        raise GenaugError(f"--per-image {options.per_image}: out of range (expected 1 to {MAX_VARIANTS_PER_IMAGE:,})")
    spec = parse_spec(options.variants_of)
    sources = load_data(spec)
    require_snapshot_data(sources, snapshot.meta, f"--variants-of {options.variants_of!r}")
    source_counts = tuple(int(c) for c in sources.class_counts())
    if options.mix_classes and len(source_counts) < 2:
        raise GenaugError(f"--mix-classes: {options.variants_of!r} has {len(source_counts)} class (expected 2 or more "
                          "to render one under another)")
    pairs = () if options.mix_pairs is None else parse_mix_pairs(options.mix_pairs, sources.class_names)
    repeats = options.per_image * len(options.strength)
    settings = VariantSettings(sources.description, spec.split, sources.fingerprint, source_counts,
                               options.per_image, tuple(options.strength), options.mix_classes, pairs)
    counts = tuple(int(c) for c in VariantTable.of(settings, sources.labels).counts())
    if options.n is not None and options.n != sum(counts):
        raise GenaugError(
            f"--n {options.n} and --variants-of: disagree ({len(sources.labels):,} source images x {repeats} "
            f"{'(less those --mix-pairs leaves out) ' if pairs else ''}make "
            f"{sum(counts):,}; expected --n left out or equal)"
        )
    check_size(sum(counts), shard_size)
    plan = Plan(options.seed, shard_size, sources.class_names, counts)
    return plan, settings, VariantSources(sources.images, sources.labels)


def rendered_classes(source_labels: np.ndarray, per_image: int, num_classes: int, mix_classes: bool,
                     mix_pairs: tuple[tuple[int, int], ...] = ()) -> np.ndarray:
    """int64 (per_image, N): the class variant v of source n is rendered under: its own, or another in turn (every
    other class, or the targets `mix_pairs` gives its class); -1 for a source whose class has no target."""
    labels = np.asarray(source_labels, dtype=np.int64)
    if not mix_classes:
        return np.broadcast_to(labels, (per_image, len(labels)))
    targets = [[j for j in range(num_classes) if j != i] for i in range(num_classes)]
    if mix_pairs:
        targets = [sorted(j for source, j in mix_pairs if source == i) for i in range(num_classes)]
    counts = np.bincount(labels, minlength=num_classes)
    ranks = np.empty(len(labels), dtype=np.int64)  # each source's place among its class's sources, in split order
    ranks[np.argsort(labels, kind="stable")] = np.arange(len(labels)) - np.repeat(np.cumsum(counts) - counts, counts)
    turn = ranks[None, :] + np.arange(per_image)[:, None]
    rendered = np.full((per_image, len(labels)), -1, dtype=np.int64)
    for label, mine in enumerate(targets):
        if mine:
            of_class = labels == label
            rendered[:, of_class] = np.asarray(mine, dtype=np.int64)[turn[:, of_class] % len(mine)]
    return rendered


def parse_mix_pairs(text: str, class_names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """'benign>malignant,1>0' -> sorted (source class, target class) pairs, names or indices."""
    from gen_aug.output.plan import resolve_classes

    pairs = set()
    for item in text.split(","):
        source, sep, target = item.strip().partition(">")
        if not sep or not source.strip() or not target.strip():
            raise GenaugError(f"--mix-pairs {text!r}: item {item.strip()!r} is not SOURCE>TARGET (expected e.g. "
                              "benign>malignant,malignant>benign)")
        pair = (resolve_classes(source.strip(), class_names, "--mix-pairs"),
                resolve_classes(target.strip(), class_names, "--mix-pairs"))
        if pair[0] == pair[1]:
            raise GenaugError(f"--mix-pairs {text!r}: {item.strip()!r} renders a class under itself (expected two "
                              "different classes)")
        if pair in pairs:
            raise GenaugError(f"--mix-pairs {text!r}: {item.strip()!r} is given twice (expected each pair once)")
        pairs.add(pair)
    return tuple(sorted(pairs))


@dataclass(frozen=True)
class VariantTable:
    """Every (strength, variant, source) of a job as one number, strength slowest and source fastest, grouped by the
    class it is rendered under: the class-j row of rank r makes entry entries[first[j] + r]."""

    entries: np.ndarray  # int64: strength_index x (per_image x N) + variant x N + source index
    first: np.ndarray  # int64 (C + 1,)
    sources: int  # N

    @classmethod
    def of(cls, variants: VariantSettings, source_labels: np.ndarray) -> "VariantTable":
        num_classes = len(variants.source_counts)
        rendered = rendered_classes(source_labels, variants.per_image, num_classes, variants.mix_classes,
                                    variants.mix_pairs)
        rendered = np.tile(rendered.reshape(-1), len(variants.strengths))
        made = np.flatnonzero(rendered >= 0)  # a source whose class --mix-pairs gives no target is not varied
        order = made[np.argsort(rendered[made], kind="stable")]
        first = np.concatenate([[0], np.cumsum(np.bincount(rendered[made], minlength=num_classes))])
        return cls(order.astype(np.int64), first, len(source_labels))

    def counts(self) -> np.ndarray:
        """Rows rendered under each class."""
        return np.diff(self.first)


def variant_rows(plan: Plan, variants: VariantSettings, source_labels: np.ndarray, start: int,
                 stop: int, table: VariantTable | None = None) -> dict[str, np.ndarray]:
    """The provenance of rows start..stop-1, as the columns stored beside them (the `label` column says which class
    each was rendered under); `table`: the job's VariantTable, where it is kept between calls."""
    table = VariantTable.of(variants, source_labels) if table is None else table
    entry = table.entries[table.first[plan.labels(start, stop)] + plan.class_ranks(start, stop)]
    source_index = entry % table.sources
    per_strength = variants.per_image * table.sources
    return {
        "source_split": np.full(len(entry), variants.split, dtype=object),
        "source_index": source_index.astype(np.int64),
        "source_label": np.asarray(source_labels, dtype=np.int64)[source_index],
        "variant": (entry % per_strength) // table.sources,
        "strength": np.asarray(variants.strengths, dtype=np.float64)[entry // per_strength],
    }


class VariantImages:
    """A shard of variants: each row's source image noised and denoised at its strength, under its planned class.

    With --select useful (`judge` and its `selection` given), candidate a of variant v is variant number
    v + a * K (K: variants per image), the same source, strength and class with other noise; the row's
    `variant` column records the number kept and its `useful` column whether it passed. A row whose
    source image itself fails the judge keeps its first candidate, without rounds.
    """

    def __init__(self, model: torch.nn.Module, plan: Plan, variants: VariantSettings, sources: VariantSources,
                 device: torch.device, judge: "Classifier | None" = None, selection: FilterSettings | None = None):
        check_can_vary(model, "variants")
        self.model, self.plan, self.variants, self.sources, self.device = model, plan, variants, sources, device
        self.table = VariantTable.of(variants, sources.labels)
        self.judge, self.selection = judge, selection

    def fill(self, shard: Shard, out: torch.Tensor) -> tuple[dict[str, np.ndarray], list[int] | None]:
        columns = variant_rows(self.plan, self.variants, self.sources.labels, shard.start, shard.stop, self.table)
        labels = self.plan.labels(shard.start, shard.stop)
        if self.selection is not None:
            return columns, self._select(columns, labels, out)
        for strength in self.variants.strengths:
            rows = np.flatnonzero(columns["strength"] == strength)
            if len(rows):
                out[torch.from_numpy(rows)] = self._draw(columns, labels, rows, columns["variant"][rows]).to(out.device)
        return columns, None

    def _draw(self, columns: dict[str, np.ndarray], labels: np.ndarray, rows: np.ndarray,
              variant_numbers: np.ndarray) -> torch.Tensor:
        """uint8 variants variant_numbers[k] of the source of rows[k], all rows at one strength."""
        source_index = columns["source_index"][rows]
        strength = float(columns["strength"][rows[0]])
        return variants_uint8(self.model, self.sources.images[source_index], source_index, variant_numbers,
                              labels[rows], strength, self.plan.seed, self.device)

    def _select(self, columns: dict[str, np.ndarray], labels: np.ndarray, out: torch.Tensor) -> list[int]:
        """Fill `out` with each row's kept candidate, record its variant number; candidates judged per class."""
        from gen_aug.synthesis.selection import ClassSpread, select_useful

        spread = ClassSpread.recorded(self.selection)
        num_classes = len(self.plan.class_names)
        candidates = np.zeros(num_classes, dtype=np.int64)
        useful = np.zeros(len(labels), dtype=np.int64)
        sources = self.sources.images[columns["source_index"]]
        # A source the judge gets wrong, or finds outside its class's spread, has variants that almost never pass:
        # such a row keeps its first candidate (judged all the same) rather than spending every round on it.
        hopeful = spread.judge_candidates(self.judge, sources, labels)[0]
        for strength in self.variants.strengths:
            at = columns["strength"] == strength
            lost = np.flatnonzero(at & ~hopeful)
            if len(lost):
                made = self._draw(columns, labels, lost, columns["variant"][lost]).cpu()
                out[torch.from_numpy(lost)] = made.to(out.device)
                useful[lost] = spread.judge_candidates(self.judge, made.numpy(), labels[lost])[0]
                candidates += np.bincount(labels[lost], minlength=num_classes)
            rows = np.flatnonzero(at & hopeful)
            if not len(rows):
                continue

            def draw(picked: np.ndarray, attempts: np.ndarray, rows=rows) -> torch.Tensor:
                numbers = columns["variant"][rows[picked]] + attempts * self.variants.per_image
                return self._draw(columns, labels, rows[picked], numbers)

            staged = torch.empty((len(rows), *out.shape[1:]), dtype=torch.uint8)
            kept, passed, judged = select_useful(draw, self.judge, spread, labels[rows],
                                                 self.selection.candidates_per_round, staged)
            out[torch.from_numpy(rows)] = staged.to(out.device)
            columns["variant"][rows] += kept * self.variants.per_image
            useful[rows] = passed
            candidates += judged
        columns["useful"] = useful
        return candidates.tolist()
