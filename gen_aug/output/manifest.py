"""The job's records: a state folder while it runs, then `_manifest.json`, written last, assembled from it.

While a job runs, `.genaug/job.json` holds its JobSettings and `.genaug/done/<shard>.json` one
ShardRecord per finished shard; `--resume` trusts a record only when its shard re-hashes to it.
The manifest is built from those records at the end, then the state folder is removed.
"""

from __future__ import annotations

import json
import platform
import posixpath
from importlib import metadata

from gen_aug.errors import GenaugError
from gen_aug.output.formats import FORMATS, class_dirs, get_format, read_shard
from gen_aug.output.plan import Plan
from gen_aug.output.records import ShardRecord
from gen_aug.output.settings import FilterSettings, JobSettings
from gen_aug.output.storage import TEMP_PREFIX, Location, open_location

# The '_' follows Parquet's own dataset metadata files (_metadata, _common_metadata): pyarrow, pandas,
# Spark and Hadoop skip such names, so they read the output folder itself as a Parquet dataset.
MANIFEST = "_manifest.json"
LEGACY_MANIFEST = "manifest.json"  # the name in outputs written before; they verify, read and resume under it
MANIFEST_NAMES = (MANIFEST, LEGACY_MANIFEST)
STATE_DIR = ".genaug"
JOB_FILE = f"{STATE_DIR}/job.json"
DONE_DIR = f"{STATE_DIR}/done"
MANIFEST_VERSION = 1
# Beside the shards of a job that has not finished, and gone once its manifest is written: not a Parquet file,
# so pandas and pyarrow refuse the folder naming it ("Could not read schema from 'out/UNFINISHED.txt'") instead
# of reading the shards written so far as if they were all.
UNFINISHED = "UNFINISHED.txt"
UNFINISHED_TEXT = (
    b"This genaug synthesis output is unfinished: its job is running, or was interrupted before its\n"
    b"_manifest.json was written, so its shards are not all there and nothing vouches for them yet.\n"
    b"Rerun the same genaug synthesize command with --resume to finish it; genaug removes this file then.\n"
)


def mark_unfinished(location: Location) -> None:
    """Put UNFINISHED.txt beside the shards, before any is written; never over a file of that name of the user's."""
    if not location.exists(UNFINISHED) or is_unfinished_marker(location):
        location.write_atomic(UNFINISHED, UNFINISHED_TEXT)


def mark_finished(location: Location) -> None:
    """Remove genaug's UNFINISHED.txt, once the manifest is written."""
    if is_unfinished_marker(location):
        location.delete(UNFINISHED)


def is_unfinished_marker(location: Location) -> bool:
    """Whether UNFINISHED.txt is genaug's own (its exact text), so that genaug may replace or remove it."""
    try:
        return location.read(UNFINISHED, max_bytes=len(UNFINISHED_TEXT) + 1) == UNFINISHED_TEXT
    except OSError:
        return False


def manifest_name(location: Location) -> str | None:
    """The manifest file this output has (the current name before the legacy one), or None."""
    return next((name for name in MANIFEST_NAMES if location.exists(name)), None)


def write_json(location: Location, relative: str, record: dict) -> None:
    location.write_atomic(relative, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())


def read_json(location: Location, relative: str) -> dict:
    try:
        record = json.loads(location.read(relative))
    except (OSError, ValueError) as error:
        raise GenaugError(
            f"{location.path(relative)}: unreadable ({error}; expected a JSON file written by genaug)"
        ) from None
    if not isinstance(record, dict):
        raise GenaugError(f"{location.path(relative)}: not a JSON object (expected a file written by genaug)")
    return record


def done_file(shard_idx: int) -> str:
    return f"{DONE_DIR}/{shard_idx:05d}.json"


def previous_settings(location: Location) -> JobSettings | None:
    """The settings of the job that wrote this folder: from its state, else its manifest, else None.

    A damaged record is passed over for the other one; only when every record there is damaged is
    that an error, naming the first.
    """
    problem = None
    for relative in (JOB_FILE, *MANIFEST_NAMES):
        if location.exists(relative):
            try:
                return JobSettings.from_dict(read_json(location, relative), location.path(relative))
            except GenaugError as error:
                problem = problem or error
    if problem is not None:
        raise problem
    return None


def finished_records(location: Location, settings: JobSettings) -> dict[int, ShardRecord]:
    """Shard records, from the state folder or a manifest, whose shards still hash as recorded."""
    candidates = []
    for name in MANIFEST_NAMES:
        if location.exists(name):
            candidates += _records_or_none(location, name, lambda record: record.get("shards", []))
    for name in _done_names(location):
        candidates += _records_or_none(location, f"{DONE_DIR}/{name}", lambda record: [record])
    return {record.shard_idx: record for record in candidates if _record_matches(location, settings, record)}


def _records_or_none(location: Location, relative: str, listed) -> list[ShardRecord]:
    """The well-formed shard records in one file; a damaged file or record just means its shard is written again."""
    try:
        found = listed(read_json(location, relative))
    except GenaugError:
        return []
    records = []
    for record in found if isinstance(found, list) else []:
        try:
            records.append(ShardRecord.from_dict(record, relative))
        except GenaugError:
            continue
    return records


def _done_names(location: Location) -> list[str]:
    prefix = DONE_DIR + "/"
    return [
        f[len(prefix):] for f in location.list_files()
        if f.startswith(prefix) and not posixpath.basename(f).startswith(TEMP_PREFIX)
    ]


def _record_matches(location: Location, settings: JobSettings, record: ShardRecord) -> bool:
    plan, shard_format = settings.plan, get_format(settings.format)
    if not 0 <= record.shard_idx < plan.num_shards:
        return False
    shard = plan.shard(record.shard_idx)
    if (record.start, record.stop, record.file) != (shard.start, shard.stop, shard_format.listed_file(plan, shard.shard_idx)):
        return False
    try:
        _, sha256, num_bytes = read_shard(location, plan, shard, shard_format, recorded_bytes=record.bytes)
    except OSError:
        return False
    return (sha256, num_bytes) == (record.sha256, record.bytes)


def remove_state(location: Location) -> None:
    """Delete the job's state files once the manifest holds their records (the claim goes with the claim)."""
    for name in _done_names(location):
        location.delete(f"{DONE_DIR}/{name}")
    location.remove_dir_if_empty(DONE_DIR)
    if location.exists(JOB_FILE):
        location.delete(JOB_FILE)


def versions() -> dict:
    found = {"python": platform.python_version()}
    for package in ("genaug", "torch", "ray", "pyarrow", "pillow", "numpy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def build_manifest(settings: JobSettings, snapshot: dict, records: list[ShardRecord], timing: dict,
                   workers: list[dict]) -> dict:
    plan = settings.plan
    records = sorted(records, key=lambda r: r.shard_idx)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        **settings.to_dict(),
        "snapshot": snapshot,
        "class_names": list(plan.class_names),
        "shards": [record.to_dict() for record in records],
        "totals": {
            "images": sum(r.rows for r in records),
            "shards": len(records),
            "bytes": sum(r.bytes for r in records),
            "class_counts": [sum(r.class_counts[c] for r in records) for c in range(len(plan.class_names))],
        },
        **timing,
        "workers": workers,
        "versions": versions(),
    }
    if settings.format == "png":
        manifest["class_dirs"] = list(class_dirs(plan.class_names))
    return manifest


def load_manifest(out: str, role: str = "verify") -> tuple[Location, dict, Plan, str]:
    """(location, manifest, plan, format name) of a finished output; `role` names the input in errors."""
    location = open_location(out)
    name = manifest_name(location)
    if name is None:
        if location.exists(JOB_FILE):  # its state is there: a job that has not finished
            raise GenaugError(
                f"{role} {out!r}: interrupted before its {MANIFEST} was written (expected a finished output: "
                "rerun the same genaug synthesize with --resume to finish it)"
            )
        missing = location.missing_container() or f"no {MANIFEST}"
        raise GenaugError(f"{role} {out!r}: {missing} (expected the folder of a finished genaug synthesize)")
    manifest = read_json(location, name)
    plan = Plan.from_dict(manifest.get("plan") or {}, f"{out}/{name}")
    image_format = manifest.get("format")
    if image_format not in FORMATS:
        raise GenaugError(f"{out}/{name}: format {image_format!r} (expected one of {', '.join(FORMATS)})")
    return location, manifest, plan, image_format


def describe_manifest(manifest: dict, out: str) -> str:
    """The summary `genaug synthesize` prints."""
    totals = manifest["totals"]
    lines = [
        f"out          {out}/{MANIFEST}",
        f"images       {totals['images']:,} in {totals['shards']} {manifest['format']} shards, "
        f"{totals['bytes'] / 2**20:,.1f} MiB",
        f"written      {manifest['images_written']:,} at {manifest['images_per_sec']:,.0f} images/s "
        f"({manifest['shard_seconds']:,.1f} s of shards, {manifest['seconds']:,.1f} s in all; "
        f"{manifest['images_resumed']:,} kept from before)",
        f"workers      {len(manifest['workers'])} on {manifest['device']}"
        f" ({', '.join(str(w['images']) for w in manifest['workers'])} images each)",
    ]
    acceptance = manifest.get("acceptance")
    if acceptance is not None:
        lines.append(
            f"accepted     {acceptance['rate']:.1%} of {acceptance['candidates']:,} candidates "
            f"({FilterSettings.from_dict(manifest['filter'], MANIFEST).rule()})"
        )
        if "passed" in acceptance:
            lines.append(f"passed       {acceptance['passed']:,} of {acceptance['accepted']:,} images; the "
                         f"{acceptance['accepted'] - acceptance['passed']:,} others (useful = 0) kept their most "
                         "class-like candidate")
    lines.append("per class:" + ("   images  accepted" if acceptance is not None else ""))
    width = max(len(name) for name in manifest["class_names"])
    for label, (name, count) in enumerate(zip(manifest["class_names"], totals["class_counts"])):
        rate = acceptance["per_class"][label]["rate"] if acceptance is not None else None
        lines.append(f"  {name:<{width}}  {count:,}" + (f"  {rate:.1%}" if rate is not None else ""))
    return "\n".join(lines)
