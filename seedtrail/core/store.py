"""Content-addressed store of stage outputs under the output folder.

Arrays are saved as `<store>/arrays/<fingerprint>.npz`; a file is trusted only
if its bytes still hash to its name, so a corrupted entry is never used.
`load_arrays` memory-maps the members of an uncompressed .npz (as `np.savez` writes
them, and as a user's file often is) instead of reading them into memory: every stage
that loads the data gets the pages from the kernel's page cache, not its own copy.
"""

from __future__ import annotations

import struct
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
    with atomic_path(path, owned=True) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    return fp, path


def _stored_member(path: Path, info: zipfile.ZipInfo) -> np.ndarray | None:
    """A read-only memory map of an uncompressed .npy member, or None if it cannot be one."""
    if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            return None
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }.get(version)
        if read_header is None:
            return None
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if dtype.hasobject or 0 in shape or not shape:
        return None  # np.load handles these (and refuses pickles)
    return np.memmap(path, dtype, "r", offset, shape, "F" if fortran else "C")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz: memory-mapped where stored uncompressed, else loaded."""
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    with np.load(path, allow_pickle=False) as npz:
        for k in npz.files:
            mapped = _stored_member(path, infos[f"{k}.npy"]) if f"{k}.npy" in infos else None
            arrays[k] = mapped if mapped is not None else npz[k]
    return arrays


def load_arrays(path: Path, fingerprint: str | None = None) -> dict[str, np.ndarray]:
    """Load arrays (memory-mapped where possible); if a fingerprint is given, verify it."""
    try:
        arrays = read_npz(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise CorruptEntry(f"{path}: {err}") from err
    if fingerprint is not None and fingerprint_arrays(arrays) != fingerprint:
        raise CorruptEntry(f"{path}: bytes do not match fingerprint {fingerprint[:12]}")
    return arrays
