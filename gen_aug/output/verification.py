"""`genaug verify`: re-hash every shard of a finished output against its manifest, and refuse paths it should not read."""

from __future__ import annotations

from dataclasses import dataclass, field

from gen_aug.errors import GenaugError
from gen_aug.output.card import CARD, is_genaug_card
from gen_aug.output.formats import ShardFormat, get_format, read_shard
from gen_aug.output.manifest import load_manifest, manifest_name
from gen_aug.output.plan import Plan
from gen_aug.output.records import ShardRecord


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


def planned_records(manifest: dict, plan: Plan, shard_format: ShardFormat, where: str) -> dict[int, ShardRecord]:
    """Each planned shard's record by index, checked as `verify` checks them: a refused or missing one raises."""
    report = VerifyReport(where)
    records = _planned(manifest, plan, shard_format, report, where)
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
    location, manifest, plan, format_name = load_manifest(out)
    shard_format = get_format(format_name)
    report = VerifyReport(out)
    name = manifest_name(location)
    expected_files = {name}
    records = _planned(manifest, plan, shard_format, report, f"{out}/{name}")
    for shard_idx, record in sorted(records.items()):
        shard = plan.shard(shard_idx)
        files = shard_format.files(plan, shard)
        expected_files.update(files)
        present = [f for f in files if location.exists(f)]
        if len(present) < len(files):
            report.missing += [f for f in files if f not in present]
        else:
            problem = _shard_problem(location, plan, shard, shard_format, record)
            if problem is not None:
                what = files[0] if len(files) == 1 else f"{len(files)} files"
                report.corrupt.append(f"shard {shard_idx} ({what}{problem})")
        report.shards += 1
        report.images += shard.rows
    report.missing += [
        f"shard {s.shard_idx} (no record in the manifest)" for s in plan.shards() if s.shard_idx not in records
    ]
    if is_genaug_card(location):
        expected_files.add(CARD)  # a description of the shards, edited freely: not hashed, never unlisted
    report.unlisted = [f for f in location.list_files() if f not in expected_files]
    return report


def _shard_problem(location, plan, shard, shard_format, record: ShardRecord) -> str | None:
    """None when the shard hashes as recorded; else what is wrong, to follow its file name."""
    try:
        found = read_shard(location, plan, shard, shard_format, recorded_bytes=record.bytes)[1:]
    except OSError as error:
        return f": {error.strerror or error}"
    return None if found == (record.sha256, record.bytes) else ""


def _planned(manifest: dict, plan: Plan, shard_format: ShardFormat, report: VerifyReport,
             where: str) -> dict[int, ShardRecord]:
    """The manifest's records of planned shards; the others go to `report.refused`.

    Manifest paths are never followed as written: only the file names the plan itself derives are read.
    """
    listed = manifest.get("shards", [])
    if not isinstance(listed, list):
        raise GenaugError(f"{where}: shards = {listed!r:.60} (expected a list of shard records)")
    records = {}
    for entry in listed:
        try:
            record = ShardRecord.from_dict(entry, where)
        except GenaugError:
            report.refused.append(f"shard record {entry!r:.80} (expected shard_idx, file, start, stop, sha256)")
            continue
        if not 0 <= record.shard_idx < plan.num_shards:
            report.refused.append(f"shard {record.shard_idx} (the plan has shards 0-{plan.num_shards - 1})")
            continue
        expected = shard_format.listed_file(plan, record.shard_idx)
        if record.file != expected:
            file = record.file
            escapes = isinstance(file, str) and (file.startswith("/") or "\\" in file or ".." in file.split("/"))
            why = "escapes the output folder" if escapes else "is not this shard's file"
            report.refused.append(f"shard {record.shard_idx} file {file!r} {why} (expected {expected!r})")
            continue
        records[record.shard_idx] = record
    return records
