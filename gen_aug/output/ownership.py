"""Which files of an output genaug wrote: the only ones --overwrite deletes, and what makes a folder genaug's at all.

A folder is a genaug output when its state or manifest parses as a genaug job's settings. Its files
are then the shards of that plan (by the names the plan gives them, never by paths read from a
record), the manifest, the state folder and temporaries; anything else is the user's and stays.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from gen_aug.errors import GenaugError
from gen_aug.output.card import CARD, is_genaug_card
from gen_aug.output.claim import CLAIM_FILE
from gen_aug.output.formats import DATA_DIR, class_dirs, shard_file
from gen_aug.output.manifest import (
    DONE_DIR, JOB_FILE, MANIFEST_NAMES, STATE_DIR, UNFINISHED, is_unfinished_marker, previous_settings,
)
from gen_aug.output.settings import JobSettings
from gen_aug.output.storage import TEMP_PREFIX, Location

_SHARD = re.compile(r"shard-([0-9]{5,})\.parquet|" + re.escape(DATA_DIR) + r"/train-([0-9]{5,})-of-[0-9]{5,}\.parquet")
_PNG = re.compile(r"([^/]+)/([0-9]+)\.png")
_DONE = re.compile(re.escape(DONE_DIR) + r"/[0-9]{5,}\.json")


@dataclass(frozen=True)
class Ownership:
    settings: JobSettings | None  # the previous job's, where its state or manifest is readable
    problem: str | None  # why they are not, where a state or manifest is there but unreadable
    ours: list[str]  # files genaug wrote (a damaged record's output: files with the names genaug gives)
    foreign: list[str]  # everything else


def inspect_output(location: Location) -> Ownership:
    try:
        settings, problem = previous_settings(location), None
    except GenaugError as error:
        settings, problem = None, str(error)
    ours, foreign = [], []
    # Computed once: an output holds a file per image in the png format.
    folders = set(class_dirs(settings.plan.class_names)) if settings is not None else set()
    for relative in location.list_files():
        if relative == CLAIM_FILE:
            continue  # the claim belongs to whichever job holds it, and goes with that job
        # A README.md is the commonest file name there is: genaug's only where it is genaug's card.
        if relative == CARD:
            written = is_genaug_card(location)
        elif relative == UNFINISHED:  # ours only in an output whose records are readable, and with our text
            written = settings is not None and is_unfinished_marker(location)
        else:
            written = _written_by_genaug(relative, settings, folders)
        (ours if written else foreign).append(relative)
    return Ownership(settings, problem, ours, foreign)


def _written_by_genaug(relative: str, settings: JobSettings | None, folders: set[str]) -> bool:
    if relative in (*MANIFEST_NAMES, JOB_FILE) or _DONE.fullmatch(relative):
        return True
    if posixpath.basename(relative).startswith(TEMP_PREFIX):
        return True
    if settings is None:
        return False  # unreadable records vouch for no shard: a user's cats/001.png must never be taken as ours
    shard, png = _SHARD.fullmatch(relative), _PNG.fullmatch(relative)
    plan = settings.plan
    if settings.format == "png":
        return bool(png) and png.group(1) in folders and int(png.group(2)) < plan.n
    return bool(shard) and any(int(index) < plan.num_shards and relative == shard_file(plan, int(index))
                               for index in shard.groups() if index)


def remove_ours(location: Location, ownership: Ownership) -> None:
    """Delete the files genaug wrote (never a link, never a foreign file), then the folders they leave empty."""
    # The records last: a delete cut short leaves a folder whose records still say which files are genaug's.
    records = (*MANIFEST_NAMES, JOB_FILE)
    for relative in sorted(ownership.ours, key=lambda relative: relative in records):
        location.delete(relative)
    folders = {posixpath.dirname(relative) for relative in ownership.ours if "/" in relative}
    for folder in sorted(folders, key=len, reverse=True):
        location.remove_dir_if_empty(folder)
    location.remove_dir_if_empty(STATE_DIR)


def refuse_foreign(ownership: Ownership, out: str) -> None:
    """--resume and --overwrite touch a folder only when genaug can tell which of its files are genaug's."""
    if ownership.settings is not None:
        return
    if ownership.problem is None:
        example = (ownership.foreign or ownership.ours)[0]
        raise GenaugError(
            f"--out {out!r}: holds files genaug did not write, such as {example!r} (expected an empty folder or a "
            "genaug output)"
        )
    if ownership.problem is not None:
        raise GenaugError(
            f"--out {out!r}: its records are unreadable ({ownership.problem}), so genaug cannot tell its files from "
            "yours; nothing was changed (remove the damaged .genaug/job.json or manifest to start anew)"
        )
