"""Local files written atomically: readers see the old file or the whole new one, never a part, even after a crash."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gen_aug.errors import GenaugError


def write_atomic(path: Path, payload: bytes) -> None:
    """Write `payload` under a temporary name in the same folder, fsync it, then rename it over `path`."""
    if path.is_dir():
        raise GenaugError(f"{path}: is a folder (expected a file name)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:  # a file where a folder should be, or no write permission
        raise GenaugError(f"{path}: cannot write ({error.strerror}; expected a path in a writable folder)") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
