"""An evaluation's classifier runs side by side: each (arm, seed) run a task, in processes of one torch thread each.

The runs are independent, and a small CNN at 28 px makes poor use of a second thread: one run per
core, each on one thread, finishes a set of runs sooner than every thread on one run at a time. A
run's figures must not depend on how many ran beside it, so every run, in a process of the pool or
here, uses THREADS_PER_RUN torch threads (the report records it), and a run's result depends on its
task alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import TypeVar

import torch
from tqdm import tqdm

THREADS_PER_RUN = 1  # torch threads of every classifier run, whatever the number of runs at once
REFRESH_S = 1.0  # the overall bar redraws at least this often while runs are under way
PROBE_CLASSIFIER_STEPS = 20  # timed for an evaluation's estimate
# Each process of the pool imports torch first (seconds): runs of fewer steps than this in all stay here.
MIN_STEPS_TO_SPREAD = 5000

Task = TypeVar("Task")
Outcome = TypeVar("Outcome")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which a container or `taskset` may narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform
        return os.cpu_count() or 1


def jobs_for(jobs: int | None, device: str | None, total_steps: int) -> int:
    """Runs at once: as asked; else one per usable CPU where the runs' `total_steps` repay starting processes, and
    one on a GPU, which runs them one after another anyway."""
    if jobs is not None:
        return jobs
    if device == "cuda" or (device is None and torch.cuda.is_available()) or total_steps < MIN_STEPS_TO_SPREAD:
        return 1
    return usable_cpus()


def seconds_per_classifier_step(data, config, device=None) -> float:
    """A few steps of the classifier `config` (a ClassifierConfig) on `data` (LabelledImages), timed on one thread as
    every run trains: the probe behind an evaluation's rough time."""
    from gen_aug.classifiers.classifier import train_classifier

    with torch_threads(THREADS_PER_RUN):
        started = time.perf_counter()
        train_classifier(data.images, data.labels, data.num_classes,
                         dataclasses.replace(config, steps=PROBE_CLASSIFIER_STEPS), device=device)
    return (time.perf_counter() - started) / PROBE_CLASSIFIER_STEPS


@contextlib.contextmanager
def torch_threads(count: int):
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_OPEN_BARS: list = []  # the bar of the evaluation under way, on which every phase of its runs counts


@contextlib.contextmanager
def one_bar(total: int, progress: bool = True):
    """One bar over all of an evaluation's runs, whatever phases run them (tuning, the teachers, then the arms they
    teach): run_all counts on it. Inside another, the outer one is the bar."""
    if _OPEN_BARS:
        yield _OPEN_BARS[-1]
        return
    bar = tqdm(total=total, desc="evaluate", unit="run", disable=not progress, file=sys.stderr,
               mininterval=REFRESH_S, dynamic_ncols=True)
    _OPEN_BARS.append(bar)
    try:
        yield bar
    finally:
        _OPEN_BARS.pop()
        bar.close()


def run_all(work: Callable[[Task], Outcome], tasks: Sequence[Task], names: Sequence[str], jobs: int,
            progress: bool = True) -> list[Outcome]:
    """work(task) for every task, in task order; `jobs` at a time in spawned processes (1: here, in turn).

    `work` must be picklable (a module-level function or a partial of one) for jobs > 1. One bar counts
    the runs done of all of them (of the whole evaluation inside `one_bar`) and names those under way.
    """
    with one_bar(len(tasks), progress) as bar:
        if jobs <= 1 or len(tasks) <= 1:
            return _in_turn(work, tasks, names, bar)
        return _side_by_side(work, tasks, names, min(jobs, len(tasks)), bar)


def _in_turn(work, tasks, names, bar) -> list:
    outcomes = []
    with torch_threads(THREADS_PER_RUN):
        for task, name in zip(tasks, names):
            bar.set_postfix_str(name)
            outcomes.append(work(task))
            bar.update()
    return outcomes


def _side_by_side(work, tasks, names, jobs: int, bar) -> list:
    outcomes = [None] * len(tasks)
    context = multiprocessing.get_context("spawn")  # fork would copy this process's torch threads and locks
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=torch.set_num_threads,
                               initargs=(THREADS_PER_RUN,))
    try:
        pending = {pool.submit(work, task): index for index, task in enumerate(tasks)}
        while pending:
            bar.set_postfix_str(", ".join(names[index] for index in sorted(pending.values())[:jobs]))
            done, _ = wait(pending, timeout=REFRESH_S, return_when=FIRST_COMPLETED)
            for future in done:
                outcomes[pending.pop(future)] = future.result()
                bar.update()
            bar.refresh()  # the elapsed time moves even while no run finishes
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return outcomes
