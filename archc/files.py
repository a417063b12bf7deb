"""Reading input files without blocking or overrunning memory; writing output files whole or not
at all."""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# What a path can name besides a regular file, as a reason that file is refused.
_NOT_REGULAR = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISSOCK, "a socket"))


class NotRegularFile(OSError):
    """The path names a directory, a FIFO, a device or a socket; `kind` says which."""

    def __init__(self, kind: str):
        super().__init__(f"{kind}, not a regular file")
        self.strerror, self.kind = self.args[0], kind


class FileTooLarge(OSError):
    """The file holds more bytes than the reader's limit."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"{size:,} bytes, over the limit of {limit:,}")
        self.strerror, self.size, self.limit = self.args[0], size, limit


@contextlib.contextmanager
def open_regular_file(path: str | Path, limit: int | None = None) -> Iterator[tuple[BinaryIO, int]]:
    """The open regular file at `path` and its size. Opened with O_NONBLOCK and checked with
    fstat before any read, so a FIFO cannot block the reader and a device (/dev/zero) cannot fill
    its memory: both raise NotRegularFile; a file over `limit` bytes raises FileTooLarge, unread.
    Raises OSError; callers word the message."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise NotRegularFile(next((kind for is_kind, kind in _NOT_REGULAR
                                       if is_kind(status.st_mode)), "a special file"))
        if limit is not None and status.st_size > limit:
            raise FileTooLarge(status.st_size, limit)
    except BaseException:
        os.close(descriptor)
        raise
    with open(descriptor, "rb") as handle:
        yield handle, status.st_size


def read_regular_file(path: str | Path, limit: int | None = None) -> bytes:
    """The bytes of the regular file at `path` (see open_regular_file): at most its size when
    opened, so a file growing meanwhile cannot pass the limit."""
    with open_regular_file(path, limit) as (handle, size):
        return handle.read(size)


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file renamed into place, so a failure never
    leaves a partial file. The file gets the permissions a plain open() would give (the umask),
    not the temporary file's 0600. Raises OSError; callers word the message."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
