"""Every metric of a synthetic set against real train and test sets in memory, as one EvaluationResult."""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from gen_aug import __version__
from gen_aug.data import LabelledImages
from gen_aug.errors import GenaugError
from gen_aug.evaluation.arms import run_arms
from gen_aug.classifiers.classifier import REFERENCE_SEED, Classifier, ClassifierConfig, cache_key, reference_classifier
from gen_aug.evaluation.memorisation import memorisation
from gen_aug.evaluation.metrics import (
    class_consistency,
    frechet_distance,
    frechet_per_class,
    precision_recall,
    sample_indices,
)
from gen_aug.evaluation.mixing import check_compatible
from gen_aug.evaluation.options import EvaluationOptions
from gen_aug.evaluation.parallel import THREADS_PER_RUN
from gen_aug.evaluation.result import (
    ClassPrior,
    EvaluatedSets,
    EvaluationResult,
    EvaluationSettings,
    FrechetDistances,
    PrecisionRecallWithBaseline,
    ReferenceScore,
    SetSummary,
)
from gen_aug.evaluation.scores import per_class_recall

PRIOR_SHIFT_TOLERANCE = 0.05  # total variation between train and test class shares above which a report warns


def evaluate_images(
    real_train: LabelledImages,
    real_test: LabelledImages,
    synthetic: LabelledImages,
    options: EvaluationOptions = EvaluationOptions(),
    *,
    config: ClassifierConfig | None = None,
    sample_seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = lambda message: None,
    progress: bool = True,
    variant_sources: VariantProvenance | None = None,
) -> EvaluationResult:
    """Every metric of `synthetic` against the real data (what report.json holds, less its inputs).

    `variant_sources`: for a --variants-of output, each synthetic image's source real train image, class and
    strength (the variants arms swap them in).

    `options` gives seeds, arms and mix (its data specs are not read); `config` the classifier,
    by default the options' steps. Distances use at most `sample_size` images of each set, drawn
    with `sample_seed`, so figures compare across runs; class consistency uses every synthetic image.
    """
    config = config if config is not None else options.classifier_config()
    device = None if options.device == "auto" else options.device
    sets = _checked_sets(real_train, real_test, synthetic, options.k)
    log("reference classifier (trained on real train, cached)")
    judge = reference_classifier(real_train, config, seed=REFERENCE_SEED, cache_dir=cache_dir, device=device,
                                 progress="reference classifier" if progress else None)
    reference = _reference_score(judge, real_train, real_test, config)
    consistency = class_consistency(judge.predict(synthetic.images), synthetic.labels, real_train.num_classes)
    log(f"features of at most {options.sample_size} images per set; nearest real image of each synthetic one")
    frechet, quality = _distances(judge, sets, options.sample_size, sample_seed, options.k)
    copies = memorisation(judge, real_train, real_test, synthetic,
                          sample_indices(len(synthetic.images), options.sample_size, sample_seed),
                          sample_size=options.sample_size, sample_seed=sample_seed)
    tstr, mixing, arms = run_arms(real_train, synthetic, real_test, options, config, device=device, log=log,
                                  progress=progress, variant_sources=variant_sources)
    return EvaluationResult(
        genaug_version=__version__,
        class_names=tuple(real_train.class_names),
        data=EvaluatedSets(**{name: _summary(data) for name, data in sets.items()}),
        settings=EvaluationSettings(
            seeds=tuple(options.seeds), classifier=config, network=options.classifier, arms=tuple(options.arms),
            metric=options.metric, mix=options.mix, mix_ratio=options.mix_ratio, real_share=options.real_share,
            policy=options.policy, flip=options.flip, sample_size=options.sample_size, sample_seed=sample_seed,
            k=options.k, threads_per_run=THREADS_PER_RUN,
        ),
        reference_classifier=reference,
        class_consistency=consistency,
        frechet_distance=frechet,
        precision_recall=quality,
        tstr=tstr,
        mixing=mixing,
        arms=arms,
        prior=class_prior(real_train, real_test),
        memorisation=copies,
    )


def class_prior(real_train: LabelledImages, real_test: LabelledImages) -> ClassPrior:
    """Class shares of train and test, how far apart they are, and what one test image is worth in points."""
    train_shares = real_train.class_counts() / len(real_train.images)
    test_counts = real_test.class_counts()
    distance = float(np.abs(train_shares - test_counts / len(real_test.images)).sum() / 2)
    present = test_counts[test_counts > 0]
    return ClassPrior(
        real_train=tuple(train_shares.tolist()),
        real_test=tuple((test_counts / len(real_test.images)).tolist()),
        distance=distance,
        shifted=distance > PRIOR_SHIFT_TOLERANCE,
        points_per_test_image=100 / len(real_test.images),
        # Balanced accuracy averages recall over classes: one image of a class of n is 1/n of 1/K of it.
        points_per_rarest_test_image=100 / (len(present) * int(present.min())),
    )


def _checked_sets(
    real_train: LabelledImages, real_test: LabelledImages, synthetic: LabelledImages, k: int
) -> dict[str, LabelledImages]:
    """The three sets by role, once each is known to fit the others and to be large enough for precision/recall."""
    check_compatible(real_train, real_test, f"real test images {real_test.description}")
    check_compatible(real_train, synthetic, f"synthetic images {synthetic.description}")
    sets = {"real_train": real_train, "real_test": real_test, "synthetic": synthetic}
    for name, data in sets.items():
        if len(data.images) <= k:
            raise GenaugError(
                f"{name.replace('_', ' ')} images {data.description}: {len(data.images)} images "
                f"(expected more than k={k} for precision and recall)"
            )
    return sets


def _reference_score(
    judge: Classifier, real_train: LabelledImages, real_test: LabelledImages, config: ClassifierConfig
) -> ReferenceScore:
    predicted = judge.predict(real_test.images)
    return ReferenceScore(
        test_accuracy=float((predicted == real_test.labels).mean()),
        per_class_recall=tuple(per_class_recall(predicted, real_test.labels, real_train.num_classes)),
        seed=REFERENCE_SEED,
        cache_key=cache_key(real_train, config, REFERENCE_SEED),
    )


def _distances(
    judge: Classifier, sets: dict[str, LabelledImages], sample_size: int, sample_seed: int, k: int
) -> tuple[FrechetDistances, PrecisionRecallWithBaseline]:
    """Fréchet distance and precision/recall of real test vs synthetic, beside real test vs real train for scale."""
    samples = {
        name: data.select(sample_indices(len(data.images), sample_size, sample_seed)) for name, data in sets.items()
    }
    features = {name: judge.embed(data.images) for name, data in samples.items()}  # (N, feature_dim) each
    real, synthetic, baseline = features["real_test"], features["synthetic"], features["real_train"]
    frechet = FrechetDistances(
        overall=frechet_distance(real, synthetic),
        per_class=frechet_per_class(
            real, samples["real_test"].labels, synthetic, samples["synthetic"].labels, judge.num_classes
        ),
        real_train_vs_test=frechet_distance(real, baseline),
    )
    quality = precision_recall(real, synthetic, k=k)
    return frechet, PrecisionRecallWithBaseline(
        precision=quality.precision, recall=quality.recall, k=quality.k,
        real_train_vs_test=precision_recall(real, baseline, k=k),
    )


def _summary(data: LabelledImages) -> SetSummary:
    return SetSummary(
        description=data.description,
        images=len(data.images),
        fingerprint=data.fingerprint,
        class_counts=tuple(data.class_counts().tolist()),
    )
