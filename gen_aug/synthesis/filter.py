"""Synthesis with --min-confidence: each image is redrawn from further latents until the reference classifier is sure of its class.

Image i tries latent indices i, i + n, i + 2n, ... (n: the job's image count, so no two images
ever share a latent) and keeps the first candidate whose own-class probability reaches the
threshold. What an image becomes depends on its index alone, never on the shard's other images or
the worker that drew it, and its latent index is stored beside it so it can be drawn again.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import torch

from gen_aug.classifiers.classifier import Classifier, ClassifierConfig, cache_key, classifier_meta, classifier_weights
from gen_aug.errors import GenaugError
from gen_aug.output.plan import Plan, Shard
from gen_aug.output.records import ShardRecord
from gen_aug.output.settings import FilterSettings

# A class whose candidates pass less often than this, over at least MIN_CANDIDATES_TO_JUDGE of them, is hopeless at
# this threshold: say so instead of looping. The cap bounds the work one unlucky image can cause.
MIN_ACCEPTANCE_RATE = 0.01
MIN_CANDIDATES_TO_JUDGE = 1000
MAX_CANDIDATES_PER_IMAGE = 1000


def filter_settings(
    data_spec: str | None, min_confidence: float | None, select: str | None, per_round: int,
    config: ClassifierConfig | None, snapshot_meta: dict,
) -> tuple[FilterSettings, bytes]:
    """(the job's filter settings, the reference classifier's safetensors weights), trained or taken from the cache.

    The classifier learns the train split of `data_spec`, which must have the snapshot's classes and image shape;
    with select 'useful', each class's spread in its features is measured on that split too.
    """
    from gen_aug.checkpoint import require_snapshot_data
    from gen_aug.classifiers.classifier import reference_classifier
    from gen_aug.data import load_data, parse_spec
    from gen_aug.classifiers.classifier import REFERENCE_SEED
    from gen_aug.synthesis.selection import ClassSpread

    flag = "--select useful" if select == "useful" else "--min-confidence"
    if min_confidence is not None and not 0 <= min_confidence <= 1:
        raise GenaugError(f"--min-confidence {min_confidence}: not a probability (expected 0 to 1)")
    if data_spec is None:
        raise GenaugError(f"{flag}: needs the real set its classifier learns (expected --data SPEC too)")
    train = load_data(dataclasses.replace(parse_spec(data_spec), split="train"))
    require_snapshot_data(train, snapshot_meta, f"--data {data_spec!r}")
    config = config or ClassifierConfig()
    judge = reference_classifier(train, config, seed=REFERENCE_SEED, progress=f"{flag}: its judge (cached after)")
    weights = classifier_weights(judge)
    rule = {}
    if select == "useful":
        spread = ClassSpread.of(judge, train.images, train.labels)
        rule = {"select": "useful", "candidates_per_round": per_round, "centroids": spread.centroids.tolist(),
                "radii": spread.radii.tolist()}
    settings = FilterSettings(
        min_confidence=min_confidence, data=train.description, classifier_key=cache_key(train, config, REFERENCE_SEED),
        classifier_sha256=hashlib.sha256(weights).hexdigest(), classifier=classifier_meta(judge), **rule,
    )
    return settings, weights


class ConfidentImages:
    """The --min-confidence job's images: each the first of its candidates that the judge is sure enough of."""

    def __init__(self, model: torch.nn.Module, judge: Classifier, plan: Plan, min_confidence: float,
                 device: torch.device):
        self.model, self.judge, self.plan = model, judge, plan
        self.min_confidence, self.device = min_confidence, device

    def fill(self, shard: Shard, out: torch.Tensor) -> tuple[dict[str, np.ndarray], list[int]]:
        return generate_confident(self.model, self.judge, self.plan, shard, self.min_confidence, self.device, out)


def generate_confident(
    model: torch.nn.Module,
    judge: Classifier,
    plan: Plan,
    shard: Shard,
    min_confidence: float,
    device: torch.device,
    out: torch.Tensor,  # uint8 (shard.rows, C, H, W) on the host, filled with the accepted images
) -> tuple[dict[str, np.ndarray], list[int]]:
    """Fill `out` with a shard of confident images; returns ({'latent_index': int64 latent of each}, candidates
    per class).

    Each image takes its first passing candidate. When few images are left, each round tries several
    next candidates of each at once, to keep the generator's fixed-size calls full; candidates after
    an image's first pass are discarded and not counted, so rates and images are those of trying one
    at a time.
    """
    from gen_aug.sampling import GENERATION_CHUNK, generate_uint8

    indices, labels = np.arange(shard.start, shard.stop, dtype=np.int64), plan.labels(shard.start, shard.stop)
    latent_indices = np.full(len(indices), -1, dtype=np.int64)
    candidates = np.zeros(judge.num_classes, dtype=np.int64)
    accepted_count = np.zeros(judge.num_classes, dtype=np.int64)
    pending, attempt = np.arange(len(indices)), 0
    while len(pending) and attempt < MAX_CANDIDATES_PER_IMAGE:
        _refuse_hopeless(plan, labels[pending], candidates, accepted_count, min_confidence)
        tries = min(max(1, GENERATION_CHUNK[device.type] // len(pending)), MAX_CANDIDATES_PER_IMAGE - attempt)
        tried = indices[pending, None] + (attempt + np.arange(tries))[None, :] * plan.n  # (pending, tries)
        tried_labels = np.repeat(labels[pending], tries)
        images = generate_uint8(
            model, plan.seed, torch.from_numpy(tried.ravel()), torch.from_numpy(tried_labels), device
        ).cpu()
        confidence = judge.predict_proba(images.numpy())[np.arange(len(tried_labels)), tried_labels]
        passed = (confidence >= min_confidence).reshape(len(pending), tries)
        accepted = passed.any(axis=1)
        first = passed.argmax(axis=1)  # the first passing try of each accepted image
        counted = np.where(accepted, first + 1, tries)
        candidates += np.bincount(labels[pending], weights=counted, minlength=judge.num_classes).astype(np.int64)
        accepted_count += np.bincount(labels[pending[accepted]], minlength=judge.num_classes)
        chosen = np.flatnonzero(accepted) * tries + first[accepted]  # rows of `images`
        out[torch.from_numpy(pending[accepted])] = images[torch.from_numpy(chosen)]
        latent_indices[pending[accepted]] = tried.ravel()[chosen]
        pending, attempt = pending[~accepted], attempt + tries
    if len(pending):
        hopeless = plan.class_names[np.bincount(labels[pending], minlength=judge.num_classes).argmax()]
        raise GenaugError(
            f"--min-confidence {min_confidence}: {len(pending)} images (most of class {hopeless!r}) found no "
            f"candidate as confident in {MAX_CANDIDATES_PER_IMAGE} tries each (expected a lower --min-confidence "
            "or a better trained model)"
        )
    return {"latent_index": latent_indices}, candidates.tolist()


def _refuse_hopeless(plan: Plan, pending_labels: np.ndarray, candidates: np.ndarray, accepted: np.ndarray,
                     min_confidence: float) -> None:
    for label in np.unique(pending_labels):
        if candidates[label] >= MIN_CANDIDATES_TO_JUDGE and accepted[label] < MIN_ACCEPTANCE_RATE * candidates[label]:
            raise GenaugError(
                f"--min-confidence {min_confidence}: class {plan.class_names[label]!r} accepted {accepted[label]} "
                f"of {candidates[label]:,} candidates (expected at least {MIN_ACCEPTANCE_RATE:.0%}: a lower "
                "--min-confidence or a better trained model)"
            )


def acceptance(records: list[ShardRecord], class_names: list[str]) -> dict:
    """Candidates drawn and accepted, per class and overall, from the shard records of a filtered job."""
    candidates = np.sum([record.candidates for record in records], axis=0)
    accepted = np.sum([record.class_counts for record in records], axis=0)
    found = {
        "candidates": int(candidates.sum()),
        "accepted": int(accepted.sum()),
        "rate": float(accepted.sum() / candidates.sum()),
        "per_class": [
            {"class": name, "candidates": int(c), "accepted": int(a), "rate": float(a / c) if c else None}
            for name, c, a in zip(class_names, candidates, accepted)
        ],
    }
    if records and all(record.passed is not None for record in records):  # --select useful: how many passed, how many fell back
        passed = np.sum([record.passed for record in records], axis=0)
        found["passed"] = int(passed.sum())
        for entry, count in zip(found["per_class"], passed):
            entry["passed"] = int(count)
    return found
