"""A synthesis output as a dataset, apart from the job that writes it: the plan of its images, the shard
formats and their bytes, the storage it lies in (local or an object store), the manifest written last, the
claim and ownership that keep genaug to its own files, the dataset card, verify and the reader.

Nothing here imports the synthesis job (Ray, workers, the driver): evaluation, the bench and a user's own
code read outputs through this package alone.

    from gen_aug.output import SyntheticImages, load_synthetic, verify

The names below are loaded on first use, so a light command that needs only the plan never loads torch.
"""

from __future__ import annotations

import importlib

_HOMES = {  # name -> the module that defines it
    "SyntheticImages": "gen_aug.output.reader",
    "load_synthetic": "gen_aug.output.reader",
    "verify": "gen_aug.output.verification",
    "VerifyReport": "gen_aug.output.verification",
    "load_manifest": "gen_aug.output.manifest",
    "describe_manifest": "gen_aug.output.manifest",
    "Plan": "gen_aug.output.plan",
    "JobSettings": "gen_aug.output.settings",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'gen_aug.output' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
