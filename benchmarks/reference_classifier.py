"""Reference classifier on the MNIST-t10k protocol split: test accuracy and training time per seed.

    python benchmarks/reference_classifier.py                  # default config, seeds 0 1 2
    python benchmarks/reference_classifier.py --steps 500 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, replace

import numpy as np
import torch

from gen_aug.classifiers.classifier import ClassifierConfig, accuracy, default_device, train_classifier
from gen_aug.data import load_data

DEFAULT_DATA = "idx:../shared/data/mnist-t10k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="a data spec without ?split (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, help="override the default config's step budget")
    args = parser.parse_args()

    train, test = load_data(f"{args.data}?split=train"), load_data(f"{args.data}?split=test")
    config = ClassifierConfig() if args.steps is None else replace(ClassifierConfig(), steps=args.steps)
    device = default_device()
    print(f"{train.description}: {len(train.images):,} train / {len(test.images):,} test images, {train.shape}")
    print(f"config {asdict(config)}; device {device}, {torch.get_num_threads()} threads, {platform.processor()}")
    rows = []
    for seed in args.seeds:
        started = time.perf_counter()
        trained = train_classifier(train.images, train.labels, train.num_classes, config, seed=seed, device=device)
        train_seconds = time.perf_counter() - started
        rows.append({"seed": seed, "test_accuracy": accuracy(trained, test), "train_seconds": round(train_seconds, 1)})
        print(json.dumps(rows[-1]), flush=True)
    accuracies = [row["test_accuracy"] for row in rows]
    print(
        f"test accuracy {100 * np.mean(accuracies):.2f}% (min {100 * min(accuracies):.2f}%) over {len(rows)} seeds; "
        f"{np.mean([row['train_seconds'] for row in rows]):.0f} s per training"
    )


if __name__ == "__main__":
    main()
