"""Content-addressed store of stage outputs under the output folder.

Arrays are saved as `<store>/arrays/<fingerprint>.npz`; a file is trusted only
if its bytes still hash to its name, so a corrupted entry is never used.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from seedtrail.core.atomic import atomic_path
from seedtrail.core.fingerprint import fingerprint_arrays


class CorruptEntry(Exception):
    """A stored file is missing or its bytes no longer match its fingerprint."""


def store_dir(output_dir: Path) -> Path:
    return Path(output_dir) / ".store"


def put_arrays(store: Path, arrays: Mapping[str, np.ndarray]) -> tuple[str, Path]:
    """Save arrays under their fingerprint; return (fingerprint, path)."""
    fp = fingerprint_arrays(arrays)
    path = store / "arrays" / f"{fp}.npz"
    # Always (re)write: an existing file might be corrupt, and the arrays are small.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    return fp, path


def load_arrays(path: Path, fingerprint: str | None = None) -> dict[str, np.ndarray]:
    """Load arrays; if a fingerprint is given, verify the bytes match it."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise CorruptEntry(f"{path}: {err}") from err
    if fingerprint is not None and fingerprint_arrays(arrays) != fingerprint:
        raise CorruptEntry(f"{path}: bytes do not match fingerprint {fingerprint[:12]}")
    return arrays
