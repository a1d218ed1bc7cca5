"""What the job's state and manifest say about one finished shard: a typed record, stored as a JSON object."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gen_aug.errors import GenaugError


@dataclass(frozen=True)
class ShardRecord:
    shard_idx: int
    file: str | None  # the one file of a parquet or raw shard; None for png shards, whose files follow from the plan
    start: int  # first global image index
    stop: int  # one past the last
    rows: int
    class_counts: tuple[int, ...]  # images of each class in the shard
    bytes: int  # of every file of the shard together
    sha256: str  # the format's digest of the shard's files
    candidates: tuple[int, ...] | None = None  # filtered jobs: latents tried per class, for the acceptance rates
    passed: tuple[int, ...] | None = None  # --select useful: images of each class that passed (the rest fell back)

    def to_dict(self) -> dict:
        record = dataclasses.asdict(self)
        record["class_counts"] = list(self.class_counts)
        for key in ("candidates", "passed"):
            if record[key] is None:
                del record[key]
            else:
                record[key] = list(record[key])
        return record

    @classmethod
    def from_dict(cls, record: object, where: str) -> "ShardRecord":
        """A record read from a state file or a manifest; anything malformed is a GenaugError naming `where`."""
        try:
            candidates, passed = record.get("candidates"), record.get("passed")
            return cls(
                shard_idx=_whole(record["shard_idx"]), file=_optional_str(record.get("file")),
                start=_whole(record["start"]), stop=_whole(record["stop"]), rows=_whole(record["rows"]),
                class_counts=tuple(_whole(c) for c in record["class_counts"]), bytes=_whole(record["bytes"]),
                sha256=_text(record["sha256"]),
                candidates=None if candidates is None else tuple(_whole(c) for c in candidates),
                passed=None if passed is None else tuple(_whole(c) for c in passed),
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            raise GenaugError(
                f"{where}: shard record {record!r:.80} (expected shard_idx, file, start, stop, rows, class_counts, "
                "bytes, sha256)"
            ) from None


def _whole(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(value)
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _optional_str(value: object) -> str | None:
    return None if value is None else _text(value)
