"""Output locations: a local folder, walked without following any link, or an object-store URI through `pyarrow.fs`.

Every file is written under a temporary name and renamed when whole. In a local folder every path
is opened one component at a time from the root with O_NOFOLLOW (as CPython's `shutil.rmtree`
does), so a link placed inside an output can never send a write, a read or a delete outside it.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import posixpath
import stat
import uuid

import pyarrow as pa
import pyarrow.fs as pafs

from gen_aug.errors import GenaugError

TEMP_PREFIX = ".tmp-"  # every partial file starts so; a sweep removes them, verify reports any left
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class Location(abc.ABC):
    """A folder of files addressed by paths relative to it, with '/' as separator."""

    uri: str  # what another process (a Ray worker) reopens with open_location
    root: str

    def path(self, relative: str) -> str:
        return posixpath.join(self.root, relative)

    @abc.abstractmethod
    def write_atomic(self, relative: str, data: bytes, *, sync: bool = True) -> None:
        """Write under a unique temporary name in the same folder, then rename: readers see all or nothing.

        With `sync` the bytes reach the disk before the rename, so a crash cannot leave a whole
        name over partial bytes (an object store's PUT is whole or absent by itself).
        """

    @abc.abstractmethod
    def create_exclusive(self, relative: str, data: bytes) -> bool:
        """Create `relative` holding `data` unless something is there already; whether this call created it."""

    @abc.abstractmethod
    def read(self, relative: str, max_bytes: int | None = None) -> bytes:
        """A regular file's bytes; OSError for anything else, or for a file over `max_bytes`."""

    @abc.abstractmethod
    def exists(self, relative: str) -> bool:
        """Whether anything (a link included) is at `relative`."""

    @abc.abstractmethod
    def list_files(self) -> list[str]:
        """Every entry below the root that is not a folder, links included and never followed, sorted."""

    @abc.abstractmethod
    def delete(self, relative: str) -> None:
        """Remove a regular file; a link or anything else there is left alone."""

    @abc.abstractmethod
    def remove_dir_if_empty(self, relative: str) -> None:
        """Remove the folder `relative` if it holds nothing; a link or a folder that holds anything stays."""

    @abc.abstractmethod
    def root_exists(self) -> bool:
        """Whether the output folder itself is there yet."""

    @abc.abstractmethod
    def remove_root_if_empty(self) -> None:
        """Remove the output folder itself if it holds nothing: a job that failed before writing leaves no trace."""

    def missing_container(self) -> str | None:
        """What is missing above the output where that, not a file in it, is the trouble (an object store's bucket)."""
        return None

    def is_empty(self) -> bool:
        return not self.list_files() and not self._has_entries()

    @abc.abstractmethod
    def _has_entries(self) -> bool:
        """Whether the root holds anything at all, empty folders included."""

    def sweep_temporaries(self) -> int:
        """Remove the partial files of interrupted or killed writers; returns how many there were."""
        stale = [f for f in self.list_files() if posixpath.basename(f).startswith(TEMP_PREFIX)]
        for relative in stale:
            self.delete(relative)
        return len(stale)


class LocalLocation(Location):
    def __init__(self, root: str):
        self.uri = self.root = root

    def __reduce__(self):
        return LocalLocation, (self.root,)

    @contextlib.contextmanager
    def _folder(self, relative_dir: str, create: bool):
        """A descriptor of the folder `relative_dir`, reached from the root one real folder at a time."""
        if create:
            os.makedirs(self.root, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in [p for p in relative_dir.split("/") if p]:
                if part in (".", ".."):
                    raise OSError(f"{relative_dir!r}: '.' and '..' are not followed")
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, dir_fd=fd)
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as error:
                    if error.errno in (errno.ELOOP, errno.ENOTDIR):  # a link, or a file where a folder should be
                        raise OSError(error.errno, f"{self.path(relative_dir)}: not a real folder (genaug "
                                      "never follows a link inside an output)") from None
                    raise
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def write_atomic(self, relative: str, data: bytes, *, sync: bool = True) -> None:
        folder, name = posixpath.split(relative)
        temporary = f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{name}"
        with self._folder(folder, create=True) as dir_fd:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
            try:
                with os.fdopen(fd, "wb") as stream:
                    stream.write(data)
                    if sync:
                        stream.flush()
                        os.fsync(stream.fileno())
                # rename replaces a link at `name` itself, never what it points to
                os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary, dir_fd=dir_fd)
                raise

    def create_exclusive(self, relative: str, data: bytes) -> bool:
        folder, name = posixpath.split(relative)
        with self._folder(folder, create=True) as dir_fd:
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
        return True

    def read(self, relative: str, max_bytes: int | None = None) -> bytes:
        folder, name = posixpath.split(relative)
        with self._folder(folder, create=False) as dir_fd:
            # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below as not a regular file.
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
            with os.fdopen(fd, "rb") as stream:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise OSError(f"{self.path(relative)}: not a regular file")
                if max_bytes is not None and info.st_size > max_bytes:
                    raise OSError(f"{self.path(relative)}: {info.st_size:,} bytes (expected at most {max_bytes:,})")
                return stream.read()

    def _lstat(self, relative: str) -> os.stat_result | None:
        folder, name = posixpath.split(relative)
        try:
            with self._folder(folder, create=False) as dir_fd:
                return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return None

    def exists(self, relative: str) -> bool:
        return self._lstat(relative) is not None

    def list_files(self) -> list[str]:
        if not os.path.isdir(self.root):
            return []
        found = []
        for folder, dirs, files in os.walk(self.root, followlinks=False):
            links = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
            for name in files + links:
                found.append(posixpath.relpath(posixpath.join(folder, name), self.root))
        return sorted(found)

    def delete(self, relative: str) -> None:
        folder, name = posixpath.split(relative)
        with self._folder(folder, create=False) as dir_fd:
            if stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                os.unlink(name, dir_fd=dir_fd)

    def remove_dir_if_empty(self, relative: str) -> None:
        parent, name = posixpath.split(relative.rstrip("/"))
        with contextlib.suppress(OSError), self._folder(parent, create=False) as dir_fd:
            if stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                os.rmdir(name, dir_fd=dir_fd)  # fails, as it should, on a folder that still holds anything

    def _has_entries(self) -> bool:
        return os.path.isdir(self.root) and any(os.scandir(self.root))

    def root_exists(self) -> bool:
        return os.path.isdir(self.root)

    def remove_root_if_empty(self) -> None:
        with contextlib.suppress(OSError):
            os.rmdir(self.root)


class ObjectStoreLocation(Location):
    """A folder of a pyarrow file system given by URI: S3 and GCS buckets, or HDFS.

    S3 and GCS have no links and no partial objects: a PUT (multipart uploads included) lands whole
    when it completes or not at all, so a file is written to its final key directly. A rename there
    would be a server-side copy of every byte and a delete, doubling the traffic and the time.
    Other file systems show a file while it is written: there it goes to a temporary name first.
    """

    ATOMIC_PUT = ("s3", "gcs")  # pyarrow FileSystem.type_name values

    def __init__(self, uri: str, fs: pafs.FileSystem, root: str):
        self.uri, self.fs, self.root = uri, fs, root

    def __reduce__(self):
        return open_location, (self.uri,)

    def write_atomic(self, relative: str, data: bytes, *, sync: bool = True) -> None:
        final = self.path(relative)
        if self.fs.type_name in self.ATOMIC_PUT:
            with self.fs.open_output_stream(final, compression=None) as stream:
                stream.write(data)
            return
        folder, name = posixpath.split(final)
        temporary = posixpath.join(folder, f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{name}")
        self.fs.create_dir(folder, recursive=True)
        with self.fs.open_output_stream(temporary, compression=None) as stream:
            stream.write(data)
        self.fs.move(temporary, final)

    def create_exclusive(self, relative: str, data: bytes) -> bool:
        # No atomic create-if-absent here: the claim is re-read before the manifest is written.
        if self.exists(relative):
            return False
        self.write_atomic(relative, data)
        return True

    def read(self, relative: str, max_bytes: int | None = None) -> bytes:
        info = self.fs.get_file_info(self.path(relative))
        if info.type != pafs.FileType.File:
            raise OSError(f"{self.path(relative)}: not a file")
        if max_bytes is not None and info.size > max_bytes:
            raise OSError(f"{self.path(relative)}: {info.size:,} bytes (expected at most {max_bytes:,})")
        with self.fs.open_input_stream(self.path(relative), compression=None) as stream:
            return stream.read()

    def exists(self, relative: str) -> bool:
        return self.fs.get_file_info(self.path(relative)).type != pafs.FileType.NotFound

    def list_files(self) -> list[str]:
        if self.fs.get_file_info(self.root).type == pafs.FileType.NotFound:
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=True))
        return sorted(posixpath.relpath(i.path, self.root) for i in infos if i.type == pafs.FileType.File)

    def delete(self, relative: str) -> None:
        self.fs.delete_file(self.path(relative))

    def remove_dir_if_empty(self, relative: str) -> None:
        pass  # object stores have no folders of their own, only key prefixes

    def root_exists(self) -> bool:
        return self.fs.get_file_info(self.root).type != pafs.FileType.NotFound

    def remove_root_if_empty(self) -> None:
        pass

    def missing_container(self) -> str | None:
        bucket = self.root.lstrip("/").split("/", 1)[0]
        if self.fs.type_name in self.ATOMIC_PUT and bucket and \
                self.fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            return f"no bucket {bucket!r} there"
        return None

    def _has_entries(self) -> bool:
        info = self.fs.get_file_info(self.root)
        return info.type != pafs.FileType.NotFound and bool(
            self.fs.get_file_info(pafs.FileSelector(self.root, recursive=False)))


def open_location(uri: str) -> Location:
    """A local path (made absolute, so other processes on the same machine agree) or a `scheme://` URI."""
    try:
        if "://" not in uri or uri.startswith("file://"):  # a file:// URI is a local folder, with its protections
            local = uri.removeprefix("file://")
            root = os.path.abspath(os.path.expanduser(local))
            if os.path.isfile(root):
                raise GenaugError(f"--out {uri!r}: is a file (expected a folder)")
            return LocalLocation(root)
        fs, root = pafs.FileSystem.from_uri(uri)
    except (OSError, ValueError, NotImplementedError, pa.ArrowException) as error:  # e.g. gs:// in a build without GCS
        raise GenaugError(
            f"--out {uri!r}: cannot open ({error}; expected a folder or a URI such as s3://bucket/dir)"
        ) from None
    try:
        found = fs.get_file_info(root).type
    except OSError as error:  # no server there, no such bucket, no credentials
        raise GenaugError(f"--out {uri!r}: cannot reach it ({error}; expected a reachable bucket and its "
                          "credentials in the environment)") from None
    if found == pafs.FileType.File:
        raise GenaugError(f"--out {uri!r}: is a file (expected a folder)")
    return ObjectStoreLocation(uri, fs, root.rstrip("/") or "/")
