"""Writing files that a crash leaves complete or absent: the one implementation for the outbox,
the print batches, the daily report and the analysts' published copy.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_file(path: Path, data: bytes, *, fsync: bool) -> None:
    """A plain write (for files in a folder that is itself renamed into place), optionally fsynced."""
    with open(path, "wb") as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write(path: Path, data: bytes, *, fsync: bool) -> None:
    """Write beside `path`, then rename over it: a reader sees the old file or the new one, never half.

    Same directory, so os.replace is an atomic rename on one filesystem.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write_file(tmp, data, fsync=fsync)
    os.replace(tmp, path)


def fsync_path(path: Path) -> None:
    """fsync a file, or a folder to make the creates and renames in it durable (POSIX)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
