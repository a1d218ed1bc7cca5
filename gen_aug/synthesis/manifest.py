"""The job's records: a state folder while it runs, `manifest.json` written last, and `verify` that re-hashes it all.

While a job runs, `.genaug/job.json` holds what decides the output bytes (plan, format, snapshot
hash) and `.genaug/done/<shard>.json` one record per finished shard; `--resume` trusts a record
only when its shard re-hashes to it. The manifest is assembled from those records at the end,
then the state folder is removed.
"""

from __future__ import annotations

import json
import platform
import posixpath
from dataclasses import dataclass, field
from importlib import metadata

from gen_aug.errors import GenaugError
from gen_aug.synthesis.plan import Plan
from gen_aug.synthesis.formats import FORMATS, class_dirs, hash_shard, listed_file, shard_files
from gen_aug.synthesis.storage import TEMP_PREFIX, Location, open_location

MANIFEST = "manifest.json"
STATE_DIR = ".genaug"
JOB_FILE = f"{STATE_DIR}/job.json"
DONE_DIR = f"{STATE_DIR}/done"
MANIFEST_VERSION = 1


def job_settings(plan: Plan, image_format: str, snapshot_sha256: str) -> dict:
    """Everything that decides the output's bytes: a resumed job must match it exactly."""
    return {"plan": plan.to_dict(), "format": image_format, "snapshot_sha256": snapshot_sha256}


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


def previous_settings(location: Location) -> dict | None:
    """The settings of the job that wrote this folder: from its state, else its manifest, else None."""
    for relative in (JOB_FILE, MANIFEST):
        if location.exists(relative):
            record = read_json(location, relative)
            return {key: record.get(key) for key in ("plan", "format", "snapshot_sha256", "filter")}
    return None


def finished_records(location: Location, plan: Plan, image_format: str) -> dict[int, dict]:
    """Shard records, from the state folder or a manifest, whose shards still hash as recorded."""
    candidates = []
    if location.exists(MANIFEST):
        candidates += shard_records(read_json(location, MANIFEST), location.path(MANIFEST))
    candidates += [read_json(location, f"{DONE_DIR}/{name}") for name in _done_names(location)]
    kept = {}
    for record in candidates:
        if _record_matches(location, plan, image_format, record):
            kept[record["shard_idx"]] = record
    return kept


def shard_records(manifest: dict, where: str) -> list:
    """The manifest's list of shard records; anything else there is an error naming the file."""
    records = manifest.get("shards", [])
    if not isinstance(records, list):
        raise GenaugError(f"{where}: shards = {records!r:.60} (expected a list of shard records)")
    return records


def _done_names(location: Location) -> list[str]:
    prefix = DONE_DIR + "/"
    return [
        f[len(prefix):] for f in location.list_files()
        if f.startswith(prefix) and not posixpath.basename(f).startswith(TEMP_PREFIX)
    ]


def _record_matches(location: Location, plan: Plan, image_format: str, record: dict) -> bool:
    try:
        shard = plan.shard(int(record["shard_idx"]))
        expected = (shard.start, shard.stop, listed_file(shard.shard_idx, image_format))
        if (record["start"], record["stop"], record["file"]) != expected or not 0 <= shard.shard_idx < plan.num_shards:
            return False
        return hash_shard(location, plan, record, image_format) == (record["sha256"], record["bytes"])
    except (KeyError, TypeError, ValueError, OSError):
        return False


def versions() -> dict:
    found = {"python": platform.python_version()}
    for package in ("genaug", "torch", "ray", "pyarrow", "pillow", "numpy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def build_manifest(settings: dict, snapshot: dict, records: list[dict], timing: dict, workers: list[dict]) -> dict:
    plan = Plan.from_dict(settings["plan"])
    records = sorted(records, key=lambda r: r["shard_idx"])
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        **settings,
        "snapshot": snapshot,
        "class_names": list(plan.class_names),
        "shards": records,
        "totals": {
            "images": sum(r["rows"] for r in records),
            "shards": len(records),
            "bytes": sum(r["bytes"] for r in records),
            "class_counts": [sum(r["class_counts"][c] for r in records) for c in range(len(plan.class_names))],
        },
        **timing,
        "workers": workers,
        "versions": versions(),
    }
    if settings["format"] == "png":
        manifest["class_dirs"] = list(class_dirs(plan.class_names))
    return manifest


@dataclass
class VerifyReport:
    out: str
    shards: int = 0
    images: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # manifest entries that name a path outside the plan

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.unlisted or self.refused)

    def lines(self) -> list[str]:
        if self.ok:
            return [f"ok: {self.out}: {self.shards} shards, {self.images:,} images, every hash matches"]
        lines = [f"FAILED: {self.out}"]
        for kind in ("refused", "missing", "corrupt", "unlisted"):
            items = getattr(self, kind)
            lines += [f"  {kind}: {item}" for item in items[:20]]
            if len(items) > 20:
                lines.append(f"  {kind}: ... {len(items) - 20} more")
        return lines


def load_manifest(out: str, role: str = "verify") -> tuple[Location, dict, Plan, str]:
    """(location, manifest, plan, format) of a finished output; `role` names the input in errors."""
    location = open_location(out)
    if not location.exists(MANIFEST):
        raise GenaugError(f"{role} {out!r}: no {MANIFEST} (expected the folder of a finished genaug synthesize)")
    manifest = read_json(location, MANIFEST)
    plan = Plan.from_dict(manifest.get("plan") or {}, f"{out}/{MANIFEST}")
    image_format = manifest.get("format")
    if image_format not in FORMATS:
        raise GenaugError(f"{out}/{MANIFEST}: format {image_format!r} (expected one of {', '.join(FORMATS)})")
    return location, manifest, plan, image_format


def planned_records(manifest: dict, plan: Plan, image_format: str, where: str) -> dict[int, dict]:
    """Each planned shard's record by index, checked as `verify` checks them: a refused or missing one raises."""
    report = VerifyReport(where)
    records = {}
    for record in shard_records(manifest, where):
        if _listed_shard_is_planned(plan, image_format, record, report):
            records[int(record["shard_idx"])] = record
    if report.refused:
        raise GenaugError(f"{where}: {report.refused[0]}; refused, nothing read")
    missing = [shard.shard_idx for shard in plan.shards() if shard.shard_idx not in records]
    if missing:
        raise GenaugError(
            f"{where}: no record of shard {missing[0]} ({len(missing)} of {plan.num_shards} missing; "
            "expected the manifest of a finished genaug synthesize)"
        )
    return records


def verify(out: str) -> VerifyReport:
    """Re-hash every shard the manifest lists; report missing, corrupt and unlisted files, refuse foreign paths."""
    location, manifest, plan, image_format = load_manifest(out)
    report = VerifyReport(out)
    expected_files = {MANIFEST}
    listed = set()
    for record in shard_records(manifest, f"{out}/{MANIFEST}"):
        if not _listed_shard_is_planned(plan, image_format, record, report):
            continue
        shard = plan.shard(record["shard_idx"])
        listed.add(shard.shard_idx)
        files = shard_files(plan, shard, image_format)
        expected_files.update(files)
        present = [f for f in files if location.exists(f)]
        if len(present) < len(files):
            report.missing += [f for f in files if f not in present]
        elif hash_shard(location, plan, record, image_format) != (record.get("sha256"), record.get("bytes")):
            report.corrupt.append(f"shard {shard.shard_idx} ({files[0] if len(files) == 1 else f'{len(files)} files'})")
        report.shards += 1
        report.images += shard.rows
    report.missing += [
        f"shard {s.shard_idx} (no record in the manifest)" for s in plan.shards() if s.shard_idx not in listed
    ]
    report.unlisted = [f for f in location.list_files() if f not in expected_files]
    return report


def _listed_shard_is_planned(plan: Plan, image_format: str, record: dict, report: VerifyReport) -> bool:
    """Manifest paths are never followed as written: only the file names the plan itself derives are read."""
    try:
        shard_idx = int(record["shard_idx"])
        file = record.get("file")
    except (KeyError, TypeError, ValueError):
        report.refused.append(f"shard record {record!r} (expected shard_idx, file, start, stop, sha256)")
        return False
    if not 0 <= shard_idx < plan.num_shards:
        report.refused.append(f"shard {shard_idx} (the plan has shards 0-{plan.num_shards - 1})")
        return False
    expected = listed_file(shard_idx, image_format)
    if file != expected:
        escapes = isinstance(file, str) and (file.startswith("/") or "\\" in file or ".." in file.split("/"))
        why = "escapes the output folder" if escapes else "is not this shard's file"
        report.refused.append(f"shard {shard_idx} file {file!r} {why} (expected {expected!r})")
        return False
    return True


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
            f"(own-class probability >= {manifest['filter']['min_confidence']:g})"
        )
    lines.append("per class:" + ("   images  accepted" if acceptance is not None else ""))
    width = max(len(name) for name in manifest["class_names"])
    for label, (name, count) in enumerate(zip(manifest["class_names"], totals["class_counts"])):
        rate = acceptance["per_class"][label]["rate"] if acceptance is not None else None
        lines.append(f"  {name:<{width}}  {count:,}" + (f"  {rate:.1%}" if rate is not None else ""))
    return "\n".join(lines)
