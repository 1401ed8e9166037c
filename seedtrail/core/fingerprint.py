"""Fingerprints: sha256 over array bytes, dtype and shape, so equal fingerprints mean equal bytes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


def _update_array(h: hashlib._Hash, name: str, arr: np.ndarray) -> None:
    arr = np.ascontiguousarray(arr)
    header = f"{name}|{arr.dtype.str}|{arr.shape}|".encode()
    h.update(len(header).to_bytes(4, "big") + header)
    # The array's own buffer, not a `tobytes()` copy: a memory-mapped array is hashed
    # without a second copy of it in memory (same bytes, same digest).
    h.update(arr.tobytes() if arr.dtype.hasobject else arr.reshape(-1).view(np.uint8))


def fingerprint_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 of named arrays, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        _update_array(h, name, np.asarray(arrays[name]))
    return h.hexdigest()


def fingerprint_sequence(arrays: Iterable[np.ndarray]) -> str:
    """sha256 of arrays in the order given (e.g. model weights)."""
    h = hashlib.sha256()
    for i, arr in enumerate(arrays):
        _update_array(h, str(i), np.asarray(arr))
    return h.hexdigest()


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def fingerprint_json(obj: Any) -> str:
    """sha256 of a JSON-able value, key order irrelevant."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def sha256_file(path: str | bytes | Any) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
