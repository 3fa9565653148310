"""File helpers shared by processes that cooperate through the file system."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_atomic(path: Path, data: str | bytes, *, mode: int = 0o644) -> None:
    """Replace a file's contents so that a reader sees the old file or the new, never half.

    The file is created with `mode` from the start (the temporary file is private until it
    is renamed), so a secret written with 0o600 is never readable by others, not even
    briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_private(path: Path, data: str | bytes) -> None:
    """Write a secret (password file, private key, record holding a password): owner only."""
    write_atomic(path, data, mode=0o600)


def private_dir(path: Path) -> Path:
    """Create a directory, and any missing parents, that only its owner may enter.

    An existing directory keeps its mode: a cluster's PostgreSQL, run as another user, may
    have been given the right to traverse it."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for part in reversed(missing):
        part.mkdir(mode=0o700, exist_ok=True)
        part.chmod(0o700)  # the umask may not widen it, but make the mode exact
    return path
