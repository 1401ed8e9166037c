"""Fingerprints mean equal bytes; writes are atomic; the store never trusts a changed file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seedtrail.core import atomic
from seedtrail.core.fingerprint import fingerprint_arrays, fingerprint_json, fingerprint_sequence
from seedtrail.core.store import CorruptEntry, load_arrays, put_arrays


def test_fingerprint_sees_bytes_dtype_and_shape() -> None:
    a = np.arange(6, dtype=np.int32)
    base = fingerprint_arrays({"a": a})
    assert fingerprint_arrays({"a": a.copy()}) == base
    assert fingerprint_arrays({"a": a.astype(np.int64)}) != base
    assert fingerprint_arrays({"a": a.reshape(2, 3)}) != base
    assert fingerprint_arrays({"b": a}) != base
    b = a.copy()
    b[3] += 1
    assert fingerprint_arrays({"a": b}) != base
    assert fingerprint_sequence([a, a]) != fingerprint_sequence([a])
    assert fingerprint_json({"x": 1, "y": 2}) == fingerprint_json({"y": 2, "x": 1})


def test_atomic_write_leaves_no_temp_and_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    atomic.write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_store_detects_corruption(tmp_path: Path) -> None:
    arrays = {"x": np.ones((3, 2), np.float32)}
    fp, path = put_arrays(tmp_path, arrays)
    assert path.name == f"{fp}.npz"
    assert np.array_equal(load_arrays(path, fp)["x"], arrays["x"])
    assert put_arrays(tmp_path, arrays) == (fp, path)  # idempotent
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptEntry):
        load_arrays(path, fp)
