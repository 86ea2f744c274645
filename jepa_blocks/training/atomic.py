"""The one atomic write: a file either keeps its old content or gets the complete new one.

Write a temporary file next to the target, flush and fsync it, ``os.replace`` it onto the
target (atomic on POSIX and Windows), then fsync the directory so that the rename itself
survives a power cut. Checkpoints, exported encoders and the rendered-data cache all write
through here.
"""

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

__all__ = ["atomic_save", "atomic_write", "fsync_directory"]


def fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; directories cannot be opened this way on Windows.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, then publish it atomically.

    The final name either keeps its old content or gets the complete new content, never a
    partial file: the data is fsynced before ``os.replace`` and the directory after it.
    """
    path = Path(path)
    directory = path.parent
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # os.open with 0o666 lets the umask decide permissions, as a plain open() would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(directory)
    return path


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` that never leaves a partial file under ``path``.

    Writes to a temporary file in the same directory, flushes and fsyncs it, renames it onto
    ``path`` with ``os.replace`` (atomic on POSIX and Windows), then fsyncs the directory. If
    anything fails, the temporary file is removed and an existing ``path`` is left untouched.

    Returns:
        The final path.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(
            f"directory {str(path.parent)!r} does not exist; create it before saving "
            f"(e.g. Path({str(path.parent)!r}).mkdir(parents=True))."
        )
    return atomic_write(path, lambda f: torch.save(obj, f))
