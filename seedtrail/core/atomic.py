"""Atomic file writes: write a temp file beside the target, fsync, then rename over it.

A reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seedtrail.core.errors import RunFailed

#: Write errors that no retry fixes, said in one line (the run then ends failed, exit 1).
_FATAL = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
}


def _raise_fatal(err: OSError, target: Path) -> None:
    """A full disk (or a read-only one) is one line naming the file, not a traceback."""
    what = _FATAL.get(err.errno or 0)
    if what is not None:
        raise RunFailed(f"output_dir: {what} writing {target}") from None


@contextlib.contextmanager
def atomic_path(target: Path, suffix: str | None = None, *, owned: bool = False) -> Iterator[Path]:
    """Yield a temp path to write to; on success it replaces `target` in one rename.

    `suffix` keeps the extension for writers that dispatch on it (Keras, matplotlib).
    `owned`: the target is seedtrail's own file (the store), so a directory in its
    place is a corrupt entry, removed, not a reason to fail (a rename cannot replace it).
    """
    target = Path(target)
    if owned and target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    ext = target.suffix if suffix is None else suffix
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=f".tmp{ext}", dir=target.parent
        )
    except OSError as err:
        _raise_fatal(err, target)
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    except OSError as err:  # the writer's own error too (Keras, numpy, matplotlib)
        _raise_fatal(err, target)
        raise
    finally:
        tmp_path.unlink(missing_ok=True)  # never a half-written file left behind


def probe_writable(directory: Path) -> None:
    """Create, write, fsync and remove a file in `directory`: OSError if it cannot be done.

    Catches what `os.access` misses: a read-only mount, /proc, a full disk, and root on
    a directory with mode 0o555 (root passes permission checks, not a read-only mount).
    """
    fd, tmp = tempfile.mkstemp(prefix=".seedtrail-probe.", dir=directory)
    try:
        os.write(fd, b"probe")
        os.fsync(fd)
    finally:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(target: Path, data: bytes, *, owned: bool = False) -> None:
    with atomic_path(target, owned=owned) as tmp:
        tmp.write_bytes(data)


def write_text(target: Path, text: str, *, owned: bool = False) -> None:
    write_bytes(target, text.encode(), owned=owned)


def write_json(target: Path, obj: Any, *, owned: bool = False) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    write_text(target, text, owned=owned)
