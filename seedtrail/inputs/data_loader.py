"""A Python data loader from the user's project: `module:function(seed) -> (x, y[, class_names])`.

The loader gets the data stage's seed (use it for any shuffling or sampling it does)
and returns:
- `x`: numeric, (n, features) for a table, or images (n, h, w) / (n, h, w, 1|3) as uint8
  or floats in [0, 1];
- `y`: n labels, class ids 0..K-1 or names (names are sorted to ids; names that are all
  numbers sort as numbers); a missing label (None, NaN, "", "NA", ...) is refused;
- optionally `class_names`: K names for the ids in `y`.

Everything is checked here and reported as one InputError line naming data.loader.
Before every run the loader is called twice from the same seed (with Python's and
numpy's global generators seeded from it): other data the second time is refused.
Its code is fingerprinted like a model builder's (seedtrail/inputs/user_code.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seedtrail.core.errors import InputError
from seedtrail.core.fingerprint import fingerprint_arrays
from seedtrail.core.thread_random import owned
from seedtrail.inputs import labels
from seedtrail.inputs.user_code import call_user


@dataclass(frozen=True)
class LoadedData:
    x: np.ndarray  # float32; images NHWC in [0, 1]
    y: np.ndarray  # int32 in 0..K-1
    class_names: tuple[str, ...]
    modality: str  # "image" or "tabular"

    def arrays(self) -> dict[str, np.ndarray]:
        """What the data stage stores and fingerprints (class names included: they name metrics)."""
        return {"x": self.x, "y": self.y, "class_names": np.array(self.class_names, dtype=np.str_)}


def _labels(
    raw: np.ndarray, names: Sequence[str] | None, where: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    if raw.ndim != 1:
        raise InputError(f"{where}: y must be one label per sample (got shape {raw.shape})")
    labels.refuse_missing(raw, where)
    if names is not None:
        names = tuple(str(n) for n in names)
        if raw.dtype.kind not in "iu":
            raise InputError(
                f"{where}: with class_names, y must be integer class ids (got {raw.dtype})"
            )
        if len(set(names)) != len(names):
            raise InputError(f"{where}: class_names has duplicates: {list(names)}")
        if raw.size and (raw.min() < 0 or raw.max() >= len(names)):
            raise InputError(
                f"{where}: y has ids {int(raw.min())}..{int(raw.max())} but class_names has {len(names)} names"
            )
        return raw.astype(np.int32), names
    raw = labels.as_numbers_if_numeric(raw)  # "1", "2", "10": classes in numeric order
    if raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
            raise InputError(f"{where}: y must be class ids or names, not NaN or fractions")
        raw = raw.astype(np.int64)
    if raw.dtype.kind not in "iuUSb":
        raise InputError(f"{where}: y must be class ids or names (got dtype {raw.dtype})")
    classes, y = np.unique(raw, return_inverse=True)
    return y.astype(np.int32), tuple(str(c) for c in classes)


def _features(x: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    if x.dtype.kind not in "biuf":
        raise InputError(f"{where}: x must be numeric (got dtype {x.dtype})")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise InputError(f"{where}: x contains NaN or infinity (first at index {bad})")
    if x.ndim == 2:
        return x.astype(np.float32), "tabular"
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise InputError(
            f"{where}: x must be (n, features), (n, h, w) or (n, h, w, 1|3); got shape {x.shape}"
        )
    if x.dtype == np.uint8:
        return (x.astype(np.float32) / np.float32(255.0)), "image"
    if x.size and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise InputError(
            f"{where}: image pixels must be uint8 or floats in [0, 1] "
            f"(got {float(x.min()):g}..{float(x.max()):g})"
        )
    return x.astype(np.float32), "image"


def validate(result: Any, name: str, setting: str = "data.loader") -> LoadedData:
    """Check what a loader returned; one InputError line per problem found first."""
    where = f"{setting}: {name}"
    if not isinstance(result, tuple | list) or len(result) not in (2, 3):
        raise InputError(
            f"{where} must return (x, y) or (x, y, class_names), not {type(result).__name__}"
        )
    try:
        x = np.asarray(result[0])
        raw_y = np.asarray(result[1])
    except (TypeError, ValueError) as err:
        raise InputError(f"{where}: x and y must be arrays ({err})") from None
    names = result[2] if len(result) == 3 and result[2] is not None else None
    if x.ndim < 2:
        raise InputError(f"{where}: x must have one row per sample (got shape {x.shape})")
    if len(x) != len(raw_y):
        raise InputError(f"{where}: x has {len(x)} samples but y has {len(raw_y)}")
    features, modality = _features(x, where)
    y, class_names = _labels(raw_y, names, where)
    if len(class_names) < 2:
        raise InputError(f"{where}: needs at least 2 classes, got {len(class_names)}")
    return LoadedData(features, y, class_names, modality)


UNSEEDED_HINT = (
    "something in it draws randomness that the seed does not reach: "
    "numpy.random.default_rng() or random.Random() without a seed, TensorFlow or torch "
    "random ops, the clock (time), os.urandom, uuid, or a file that changes; use the "
    "`seed` argument for any sampling or shuffling"
)


def load(
    loader: Callable[[int], Any], seed: int, name: str, setting: str = "data.loader"
) -> LoadedData:
    """Call the loader with the data seed and validate what it returns.

    Python's `random` and numpy's global generator are seeded from the same seed first
    (as a model builder's are), so a loader that draws from them is reproducible too.
    """
    with owned():  # no other thread draws from the stream seeded here (thread_random.py)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        loaded = call_user(loader, setting, name, seed)
    return validate(loaded, name, setting)


def load_proven(
    loader: Callable[[int], Any], seed: int, name: str, setting: str = "data.loader"
) -> LoadedData:
    """`load`, twice from the same seed: different data is refused, naming likely causes.

    As model builders are checked (seedtrail/inputs/model_builder.py). It costs one more call of
    the loader; preflight runs it on every run, cached reruns included.
    """
    first = load(loader, seed, name, setting)
    second = load(loader, seed, name, setting)
    if fingerprint_arrays(first.arrays()) != fingerprint_arrays(second.arrays()):
        raise InputError(
            f"{setting}: {name} returned different data twice from the same seed {seed}: "
            + UNSEEDED_HINT
        )
    return first
