"""What later stages read from the data stage's record: arrays (.npz in the store) or an index.

Small in-memory datasets (synthetic, digits, tables, a user's file or loader) are stored as
arrays, exactly as before: their bytes, and the golden fingerprints, do not change. An
image folder is recorded as an index (seedtrail/inputs/index.py) and read through the
input pipeline (seedtrail/inputs/stream.py), batch by batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from seedtrail.core.stage_result import StageResult
from seedtrail.core.store import load_arrays
from seedtrail.inputs.index import ImageIndex

INDEX = "index"  # the data stage's output name for an index


def is_indexed(data: StageResult) -> bool:
    return INDEX in data.outputs


def labels(data: StageResult) -> np.ndarray:
    if is_indexed(data):
        return ImageIndex.load(Path(data.outputs[INDEX])).label_array()
    return load_arrays(Path(data.outputs["arrays"]), data.fingerprint)["y"]


def source(data: StageResult, store: Path, feed: dict[str, Any] | None = None):
    """The IndexSource of an indexed data record (pixel cache built if missing and wanted)."""
    from seedtrail.inputs.stream import open_source

    feed = feed or {}
    return open_source(
        Path(data.outputs[INDEX]),
        store,
        use_cache=feed.get("cache", True),
        workers=feed.get("workers"),
    )


def images(
    data: StageResult, indices: np.ndarray, store: Path, feed: dict[str, Any] | None = None
) -> np.ndarray:
    """float32 samples `indices` of either kind of record (a few, or what a builder asks for)."""
    if is_indexed(data):
        return source(data, store, feed).images(np.asarray(indices))
    return load_arrays(Path(data.outputs["arrays"]), data.fingerprint)["x"][indices]
