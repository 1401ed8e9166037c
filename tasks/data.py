"""Data stage: generate (synthetic, tabular), load (scikit-learn digits), read a user file,
or index an image folder.

Every in-memory dataset comes out as float32 features `x` and int32 labels `y` in
0..K-1, with images as NHWC in [0, 1], stored as arrays. An image folder is recorded as
an index instead (seedtrail/inputs/index.py: files, labels, sha256s, decode settings),
and its pixels go once into the resized-uint8 cache (seedtrail/inputs/pixels.py), which
also decodes every file now: a file that cannot be decoded stops the run here, before
training. Bad files raise InputError naming the problem.
"""

from __future__ import annotations

import csv
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seedtrail.core import store
from seedtrail.core.errors import InputError
from seedtrail.core.stage import stage
from seedtrail.core.stage_cache import StageContext
from seedtrail.core.stage_result import StageOutput
from seedtrail.core.store import put_arrays
from seedtrail.inputs import data_loader, image_folder, labels, user_code
from seedtrail.inputs.datasets import SHAPES, digits, synthetic_shapes, tabular
from seedtrail.inputs.index import ImageIndex, build_index, files_hashed
from seedtrail.inputs.pixels import ensure_cache
from seedtrail.inputs.records import INDEX
from settings.model import DataSettings


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray
    y: np.ndarray
    modality: str  # "image" or "tabular"
    class_names: tuple[str, ...]
    source: str
    # Stored and fingerprinted with x and y: an image folder's file list, a loader's names.
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"x": self.x, "y": self.y, **self.extra}

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


# --- user files -------------------------------------------------------------------------------


def _encode_labels(raw: np.ndarray, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    if raw.ndim != 1:
        raise InputError(f"{where}: labels must be one-dimensional (got shape {raw.shape})")
    labels.refuse_missing(raw, where)
    raw = labels.as_numbers_if_numeric(raw)
    if raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)):
            raise InputError(f"{where}: labels contain NaN or infinity")
        if not np.all(raw == np.round(raw)):
            raise InputError(f"{where}: labels must be class ids or names, not fractions")
        if np.any(np.abs(raw) > 2**53):  # beyond exact integers in a float
            raise InputError(f"{where}: numeric labels must be below 2**53 in magnitude")
        raw = raw.astype(np.int64)
    classes, y = np.unique(raw, return_inverse=True)
    return y.astype(np.int32), tuple(str(c) for c in classes)


def _check_features(x: np.ndarray, where: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise InputError(f"{where}: features must be numeric (got dtype {x.dtype})")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])  # not np.int64(...)
        raise InputError(f"{where}: features contain NaN or infinity (first at index {bad})")
    return x


def _as_images(x: np.ndarray) -> np.ndarray:
    if x.ndim == 3:
        x = x[..., None]
    if x.dtype == np.uint8:
        return (x / 255.0).astype(np.float32)
    x = x.astype(np.float32)
    hi = float(x.max()) if x.size else 1.0
    return x / hi if hi > 1.0 else x


def read_npz(path: Path) -> Dataset:
    where = f"data.path {path}"
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # np.load would guess "pickle" and say so
            raise InputError(f"{where}: not a readable .npz file (not a zip archive)")
    try:
        arrays = store.read_npz(path)  # memory-mapped where stored uncompressed
        names = list(arrays)
        if "x" not in names or "y" not in names:
            raise InputError(f"{where}: .npz needs arrays 'x' and 'y' (found: {names or 'none'})")
        x, raw_y = arrays["x"], np.asarray(arrays["y"])
    except InputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"{where}: not a readable .npz file ({_first_line(err)})") from None
    x = _check_features(x, where)
    if x.ndim not in (2, 3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
        raise InputError(
            f"{where}: x must be (n, features), (n, h, w) or (n, h, w, 1|3); got shape {x.shape}"
        )
    if len(x) != len(raw_y):
        raise InputError(f"{where}: x has {len(x)} samples but y has {len(raw_y)}")
    y, names_ = _encode_labels(raw_y, where)
    if x.ndim == 2:
        return Dataset(x.astype(np.float32), y, "tabular", names_, f"file:{path}")
    return Dataset(_as_images(x), y, "image", names_, f"file:{path}")


def read_csv(path: Path, label_column: str) -> Dataset:
    where = f"data.path {path}"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{where}: cannot read ({_first_line(err)})") from None
    if len(rows) < 2:
        raise InputError(f"{where}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    if label_column not in header:
        raise InputError(
            f"data.label_column: no column {label_column!r} in {path} (columns: {header})"
        )
    li = header.index(label_column)
    feature_cols = [i for i in range(len(header)) if i != li]
    if not feature_cols:
        raise InputError(f"{where}: no feature columns besides {label_column!r}")
    x = np.empty((len(rows) - 1, len(feature_cols)), dtype=np.float64)
    cells: list[str] = []
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(f"{where}: line {r} has {len(row)} fields, header has {len(header)}")
        cells.append(row[li].strip())
        for j, c in enumerate(feature_cols):
            try:
                x[r - 2, j] = float(row[c])
            except ValueError:
                raise InputError(
                    f"{where}: column {header[c]!r} line {r}: not a number ({row[c]!r})"
                ) from None
            if not math.isfinite(x[r - 2, j]):
                raise InputError(f"{where}: column {header[c]!r} line {r}: NaN or infinity")
    raw = np.array(cells)
    labels.refuse_missing(raw, where, f"column {label_column!r}", "line", offset=2)
    y, names_ = _encode_labels(csv_labels(cells), where)
    return Dataset(x.astype(np.float32), y, "tabular", names_, f"file:{path}")


def csv_labels(cells: list[str]) -> np.ndarray:
    """Numeric labels as numbers (1 and 1.0 are one class; 0.5 is then refused as a
    fraction), sorted numerically; anything else as names, sorted alphabetically."""
    return labels.as_numbers_if_numeric(np.array(cells))


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


# --- the stage --------------------------------------------------------------------------------


def load_dataset(s: DataSettings, seed: int, prove: bool = False) -> Dataset:
    """Produce the dataset the settings describe; raises InputError on bad user data.

    `prove`: call a Python loader twice and refuse one that gives other data from the same
    seed (preflight does, on every run: a cached rerun must not hide such a loader).
    """
    if s.kind == "synthetic":
        x, y = synthetic_shapes(s.n_samples, s.image_size, s.n_classes, s.noise, seed)
        ds = Dataset(x, y, "image", SHAPES[: s.n_classes], "synthetic shapes")
    elif s.kind == "tabular":
        x, y = tabular(s.n_samples, s.n_features, seed)
        ds = Dataset(x, y, "tabular", ("0", "1"), "sklearn make_classification")
    elif s.kind == "digits":
        x, y = digits()
        ds = Dataset(x, y, "image", tuple(str(d) for d in range(10)), "sklearn digits")
    elif s.kind == "images":
        assert s.path is not None  # enforced by DataSettings
        folder = image_folder.read_image_folder(Path(s.path), s.image_size)
        extra = {"files": folder.arrays()["files"]}
        ds = Dataset(folder.x, folder.y, "image", folder.class_names, f"images:{s.path}", extra)
    elif s.kind == "python":
        assert s.loader is not None  # enforced by DataSettings
        call = data_loader.load_proven if prove else data_loader.load
        loaded = call(user_code.resolve(s.loader, "data.loader"), seed, s.loader)
        extra = {"class_names": loaded.arrays()["class_names"]}
        ds = Dataset(
            loaded.x, loaded.y, loaded.modality, loaded.class_names, f"python:{s.loader}", extra
        )
    else:
        assert s.path is not None  # enforced by DataSettings
        path = Path(s.path)
        if path.is_dir():
            raise InputError(f"data.path: {path} is a directory, not a .npz or .csv file")
        if not path.is_file():
            raise InputError(f"data.path: file not found: {path}")
        suffix = path.suffix.lower()
        if suffix == ".npz":
            ds = read_npz(path)
        elif suffix == ".csv":
            ds = read_csv(path, s.label_column)
        else:
            raise InputError(
                f"data.path: unsupported file type {suffix or '(none)'}; use .npz or .csv"
            )
    if ds.n_classes < 2:
        raise InputError(f"data: needs at least 2 classes, {ds.source} has only {ds.n_classes}")
    return ds


def describe(ds: Dataset) -> dict:
    return {
        "source": ds.source,
        "modality": ds.modality,
        "n_samples": len(ds.x),
        "sample_shape": list(ds.x.shape[1:]),
        "n_classes": ds.n_classes,
        "class_names": list(ds.class_names),
        "class_counts": np.bincount(ds.y, minlength=ds.n_classes).tolist(),
    }


def index_folder(s: DataSettings, store: Path | None = None, persist: bool = True) -> ImageIndex:
    """The index of data.path (kind=images), hashing only files the store's stat cache lacks."""
    assert s.path is not None  # enforced by DataSettings
    return build_index(Path(s.path), s.image_size, store=store, workers=s.workers, persist=persist)


def describe_index(index: ImageIndex, path: Path) -> dict:
    return {
        "source": f"images:{path}",
        "modality": "image",
        "n_samples": len(index),
        "sample_shape": list(index.sample_shape),
        "n_classes": len(index.class_names),
        "class_names": list(index.class_names),
        "class_counts": np.bincount(index.label_array(), minlength=len(index.class_names)).tolist(),
        "decode": index.decode,
        "fingerprint_of": "the index: sorted files, labels, each file's sha256, decode settings",
    }


def _index_stage(ctx: StageContext, s: DataSettings, feed: dict) -> StageOutput:
    index = index_folder(s.model_copy(update={"workers": feed.get("workers")}), ctx.store)
    info = describe_index(index, Path(s.path or ""))
    # Files this run's process read to hash: once each, or none (from the store's stat cache).
    info["files_hashed"] = files_hashed(Path(s.path or ""))
    if feed.get("cache", True):  # decodes every file once: bad images stop the run here
        cache = ensure_cache(ctx.store, index, feed.get("workers"))
        info["pixels_fingerprint"] = cache.fingerprint
        cache.close()
    return StageOutput(index.fingerprint, outputs={INDEX: str(index.save(ctx.store))}, info=info)


# Retries: reading a user file can fail transiently; bad input never retries.
# The key covers the sha256 of data.path's content (seedtrail/core/cache_key.py), and
# `user_inputs`: the image folder's bytes or the loader's source (seedtrail/inputs/user_inputs.py).
# `feed` (data.workers, data.cache) never changes the bytes: not in the key.
@stage(retries=2, env="stack", cache_exclude=("feed",))
def run_data(
    ctx: StageContext,
    s: DataSettings,
    seed: int,
    user_inputs: dict[str, str] | None = None,
    feed: dict | None = None,
) -> StageOutput:
    if s.kind == "images":
        return _index_stage(ctx, s, feed or {})
    ds = load_dataset(s, seed)
    fp, path = put_arrays(ctx.store, ds.arrays())
    return StageOutput(fp, outputs={"arrays": str(path)}, info=describe(ds))


# --- wiring: how the pipeline feeds this stage (seedtrail/core/wiring.py); not in its code version
def _arguments(settings) -> dict:
    # How image folders are fed (data.workers, data.cache) never changes the bytes: `feed`.
    return {"s": settings.data.keyed(), "feed": settings.data.feed()}


def _key_inputs(settings, user) -> dict[str, str]:
    """The loader's source or the image folder's files, by content (the manifest's user_inputs)."""
    from seedtrail.inputs.user_inputs import key_inputs

    return key_inputs({k: v for k, v in user.items() if k.startswith("data.")})


def _check(p) -> None:
    """The image folder's index (hashed once; the store's stat cache keeps the hashes for the
    run itself and a sweep's other seeds), else the dataset, loaded: labels and shape."""
    from seedtrail.inputs.index import persist_stat_cache
    from seedtrail.inputs.user_inputs import data_inputs

    s = p.settings.data
    index = index_folder(s, p.store, persist=False) if s.kind == "images" else None
    # the loader's code or the folder (from that index, not listed again): referable
    data_inputs(s, p.store, write=False, listing=index.listing() if index else None)
    if index is not None:
        p.facts.update(labels=index.label_array(), modality="image", shape=index.sample_shape)
        if s.path is not None:  # all checks passed: keep the hashes for the run and the seeds
            p.after(lambda: persist_stat_cache(s.path, p.store))
        return
    # prove=True: a loader with unseeded randomness is refused here, before any cache lookup
    ds = load_dataset(s, p.seeds["data"], prove=True)
    p.facts.update(labels=ds.y, modality=ds.modality, shape=ds.x.shape[1:])


run_data.wire(arguments=_arguments, key_inputs=_key_inputs, check=_check)
