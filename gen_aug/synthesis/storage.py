"""An output location on any `pyarrow.fs` file system (a local folder or an object-store URI), written atomically."""

from __future__ import annotations

import os
import posixpath
import uuid
from dataclasses import dataclass, field

import pyarrow.fs as pafs

from gen_aug.errors import GenaugError

TEMP_PREFIX = ".tmp-"  # every partial file starts so; a sweep removes them, verify reports any left


@dataclass(frozen=True)
class Location:
    uri: str  # what another process (a Ray worker) reopens with open_location
    fs: pafs.FileSystem
    root: str  # the folder's path inside fs
    made_dirs: set = field(default_factory=set, compare=False, repr=False)  # spares one call per file written

    def path(self, relative: str) -> str:
        return posixpath.join(self.root, relative)

    def write_atomic(self, relative: str, data: bytes) -> None:
        """Write under a unique temporary name in the same folder, then rename: readers see all or nothing."""
        final = self.path(relative)
        folder, name = posixpath.split(final)
        temporary = posixpath.join(folder, f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{name}")
        if folder not in self.made_dirs:
            self.fs.create_dir(folder, recursive=True)
            self.made_dirs.add(folder)
        with self.fs.open_output_stream(temporary, compression=None) as stream:
            stream.write(data)
        self.fs.move(temporary, final)

    def read(self, relative: str) -> bytes:
        with self.fs.open_input_stream(self.path(relative), compression=None) as stream:
            return stream.read()

    def exists(self, relative: str) -> bool:
        return self.fs.get_file_info(self.path(relative)).type != pafs.FileType.NotFound

    def list_files(self) -> list[str]:
        """Every file below the root, as sorted paths relative to it."""
        if self.fs.get_file_info(self.root).type == pafs.FileType.NotFound:
            return []
        selector = pafs.FileSelector(self.root, recursive=True)
        infos = self.fs.get_file_info(selector)
        return sorted(
            posixpath.relpath(info.path, self.root) for info in infos if info.type == pafs.FileType.File
        )

    def delete(self, relative: str) -> None:
        self.fs.delete_file(self.path(relative))

    def delete_dir(self, relative: str) -> None:
        if self.exists(relative):
            self.fs.delete_dir(self.path(relative))
            self.made_dirs.clear()

    def is_empty(self) -> bool:
        info = self.fs.get_file_info(self.root)
        if info.type == pafs.FileType.NotFound:
            return True
        return not self.fs.get_file_info(pafs.FileSelector(self.root, recursive=False))

    def sweep_temporaries(self) -> int:
        """Remove the partial files of interrupted or killed writers; returns how many there were."""
        stale = [f for f in self.list_files() if posixpath.basename(f).startswith(TEMP_PREFIX)]
        for relative in stale:
            self.delete(relative)
        return len(stale)


def open_location(uri: str) -> Location:
    """A local path (made absolute, so other processes on the same machine agree) or a `scheme://` URI."""
    try:
        if "://" in uri:
            fs, root = pafs.FileSystem.from_uri(uri)
        else:
            uri = os.path.abspath(os.path.expanduser(uri))
            fs, root = pafs.LocalFileSystem(), uri
    except (OSError, ValueError) as error:
        raise GenaugError(
            f"--out {uri!r}: cannot open ({error}; expected a folder or a URI such as s3://bucket/dir)"
        ) from None
    if fs.get_file_info(root).type == pafs.FileType.File:
        raise GenaugError(f"--out {uri!r}: is a file (expected a folder)")
    return Location(uri, fs, root.rstrip("/") or "/")
