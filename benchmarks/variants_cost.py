"""Images per second of variants (SDEdit from real images) against images from noise, for one cdm on this machine.

A variant at strength S runs round(S x steps) of the sampler's steps, so it should cost about that
share of an image from noise, plus the same fixed work per generation chunk. The model is the
cdm of jobs/breastmnist-cdm.toml by default, untrained: sampling cost does not depend on the weights.
Runs are whole generation chunks (256 images on the CPU), as the workers make them.

    python benchmarks/variants_cost.py --resolution 28 --images 256 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from gen_aug.models import build_model
from gen_aug.sampling import generate_uint8
from gen_aug.variants import variants_uint8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=28)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--strengths", default="0.3,0.5,0.7")
    parser.add_argument("--width", type=int, default=16, help="U-Net width (jobs/breastmnist-cdm.toml: 16)")
    parser.add_argument("--steps", type=int, default=12, help="sampler steps (jobs/breastmnist-cdm.toml: 12)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model("cdm", {"resolution": args.resolution, "channels": 1, "num_classes": 2, "width": args.width,
                                "steps": args.steps}).eval()
    rng = np.random.default_rng(0)
    n = args.images
    sources = rng.integers(0, 256, size=(n, 1, args.resolution, args.resolution), dtype=np.uint8)
    indices, labels = np.arange(n), rng.integers(0, 2, size=n)

    def from_noise():
        generate_uint8(model, 0, torch.from_numpy(indices), torch.from_numpy(labels), "cpu")

    def variants(strength):
        return lambda: variants_uint8(model, sources, indices, np.zeros(n, np.int64), labels, strength, 0)

    runs = {"from noise": from_noise, **{f"variants, strength {s}": variants(float(s)) for s in args.strengths.split(",")}}
    medians = {}
    for name, run in runs.items():
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            run()
            seconds.append(time.perf_counter() - started)
        medians[name] = statistics.median(seconds)
        print(f"{name}: {[round(s, 2) for s in seconds]} s", flush=True)
    base = medians["from noise"]
    print(f"cdm {args.resolution}x{args.resolution}, {model.config.steps} {model.config.sampler} steps, guidance "
          f"{model.config.guidance:g}; {n} images per run, median of {args.repeats}; {torch.get_num_threads()} threads")
    print(f"{'':28} {'img/s':>8} {'x from noise':>13}")
    for name, seconds in medians.items():
        print(f"{name:28} {n / seconds:8.1f} {base / seconds:13.2f}")


if __name__ == "__main__":
    main()
