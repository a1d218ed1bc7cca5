"""Wall time of an evaluation's classifier runs one at a time against side by side (--jobs), and whether the figures match.

Both passes train every arm at every seed, TSTR included, on the same data with the same settings;
only the number of runs at once differs. Prints each pass's seconds, the speed-up, and whether every
figure of every arm is the same.

    python benchmarks/parallel_evaluate.py --real 'npz:...?split=train' --synthetic runs/x/synth \
        --arms real,classical,variants --seeds 0,1 --steps 1000 --jobs 2
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

from gen_aug.evaluation.arms import run_arms
from gen_aug.evaluation.evaluate import evaluation_sets, variant_sources
from gen_aug.evaluation.options import EvaluationOptions
from gen_aug.evaluation.parallel import THREADS_PER_RUN, usable_cpus
from gen_aug.output.reader import load_synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", required=True, help="data spec of the real train split")
    parser.add_argument("--synthetic", required=True, help="a finished genaug synthesize output")
    parser.add_argument("--arms", default="real,classical,synthetic,classical+synthetic")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--mix-ratio", type=float, default=1.0)
    parser.add_argument("--metric", default="accuracy")
    parser.add_argument("--jobs", type=int, default=usable_cpus())
    args = parser.parse_args()
    options = EvaluationOptions(real=args.real, synthetic=args.synthetic, arms=tuple(args.arms.split(",")),
                                seeds=tuple(int(s) for s in args.seeds.split(",")), steps=args.steps,
                                mix_ratio=args.mix_ratio, metric=args.metric, device="cpu")
    train, test = evaluation_sets(options)
    sources = variant_sources(options, train)
    synthetic = load_synthetic(args.synthetic, train.class_names)
    runs = (len(options.arms) + 1) * len(options.seeds)
    seconds, results = {}, {}
    for jobs in (1, args.jobs):
        started = time.perf_counter()
        results[jobs] = run_arms(train, synthetic, test, dataclasses.replace(options, jobs=jobs),
                                 options.classifier_config(), device="cpu", progress=False, variant_sources=sources)
        seconds[jobs] = time.perf_counter() - started
    same = results[1] == results[args.jobs]
    print(f"machine   {usable_cpus()} usable CPUs of {os.cpu_count()}; {THREADS_PER_RUN} torch thread per run")
    print(f"runs      {runs} ({len(options.arms)} arms + TSTR, {len(options.seeds)} seeds, {args.steps} steps each)")
    print(f"{'jobs':<9} {'seconds':>8}")
    for jobs in (1, args.jobs):
        print(f"{jobs:<9} {seconds[jobs]:>8.1f}")
    print(f"speed-up  {seconds[1] / seconds[args.jobs]:.2f}x with {args.jobs} at once; figures identical: {same}")


if __name__ == "__main__":
    main()
