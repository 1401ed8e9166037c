"""Per-epoch training checkpoints: a kill at any instant leaves a usable one, and only a true one is used.

A checkpoint is the model file (weights + optimizer state: Adam's moments and step
count, SGD's momentum), the Dropout seed-generator states (which `.keras` files do
not hold), and a JSON pointer `latest.json` written last: it is the commit point. The
next epoch's batch order and augmentation derive from (seed, epoch) alone, so nothing
else is needed for a bit-exact resume.

Trust: the pointer records the sha256 of every checkpoint file as written, and the
per-epoch weight fingerprints. A checkpoint is used only if its files still hash to
what was written (checked before Keras sees them: a corrupted .keras can crash the
loader, see below) and the weights it loads hash to the fingerprint recorded for that
epoch. The last two checkpoints are kept, so a bad one falls back to the one before;
with none left, training starts over. Either way the run says so in one line.

Why before loading: keras.saving.load_model reads model.weights.h5 from the zip into
memory; when that read fails (a bad CRC from a flipped byte) a bare `except` in
keras/src/saving/saving_lib.py falls back to reading the member on the fly, handing
h5py a seekable zip stream whose CRC is never checked on partial reads, so libhdf5 may
get corrupted metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seedtrail.core import atomic
from seedtrail.core.fingerprint import sha256_file
from seedtrail.core.store import load_arrays
from seedtrail.runtime.keras_io import load_model, save_model, weights_fingerprint

POINTER = "latest.json"
KEEP = 2  # checkpoints kept: the committed one and the one before (the fallback)


def seed_states(model) -> list:
    """The model's SeedGenerator state variables, in build order."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


@dataclass(frozen=True)
class Checkpoint:
    epochs_done: int
    model: Any
    state: dict[str, Any]


def _stem(epochs_done: int) -> str:
    return f"epoch-{epochs_done:04d}"


def save_checkpoint(directory: Path, model, epochs_done: int, state: dict[str, Any]) -> None:
    """Write epoch `epochs_done`'s checkpoint, then commit it in the pointer with its files' sha256.

    `state` holds `key`, `history` and `epoch_fingerprints` (one per epoch done).
    """
    stem = _stem(epochs_done)
    save_model(model, directory / f"{stem}.keras")
    rng = {f"s{i}": v.numpy() for i, v in enumerate(seed_states(model))}
    with atomic.atomic_path(directory / f"{stem}.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **rng)
    files = {n: sha256_file(directory / n) for n in (f"{stem}.keras", f"{stem}.npz")}
    kept = [c for c in _listed(directory, state.get("key")) if c["epochs_done"] < epochs_done]
    checkpoints = [*kept[-(KEEP - 1) :], {"epochs_done": epochs_done, "files": files}]
    atomic.write_json(
        directory / POINTER,
        {
            "epochs_done": epochs_done,
            "model": f"{stem}.keras",
            "rng": f"{stem}.npz",
            "checkpoints": checkpoints,
            **state,
        },
    )
    keep = {name for c in checkpoints for name in c["files"]}
    for old in directory.glob("epoch-*"):
        if old.name not in keep:
            old.unlink(missing_ok=True)


def _read_pointer(directory: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((directory / POINTER).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _listed(directory: Path, key: str | None) -> list[dict[str, Any]]:
    """The checkpoints the pointer lists for this key, oldest first."""
    state = _read_pointer(directory)
    if state is None or state.get("key") != key:
        return []
    listed = state.get("checkpoints")
    return [c for c in listed if isinstance(c, dict)] if isinstance(listed, list) else []


def _file_problem(directory: Path, files: dict[str, str]) -> str | None:
    for name, sha in files.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if sha256_file(path) != sha:
            return f"{name} changed since it was written"
    return None


def _load_verified(
    directory: Path, entry: dict[str, Any], recorded: str
) -> tuple[Any | None, str | None]:
    """(model, None) if the checkpoint is the one written and holds the recorded weights,
    else (None, why not)."""
    files = entry.get("files")
    if not isinstance(files, dict) or len(files) != 2:
        return None, "its files are not recorded"
    problem = _file_problem(directory, files)
    if problem:
        return None, problem  # never handed to Keras: a corrupted file can crash the loader
    stem = _stem(entry["epochs_done"])
    try:
        model = load_model(directory / f"{stem}.keras", compile=True)
        rng = load_arrays(directory / f"{stem}.npz")
        states = seed_states(model)
        for i, v in enumerate(states):
            v.assign(rng[f"s{i}"])
    except Exception as err:  # the files are as written, so this is Keras' own limit
        return None, f"it does not load ({type(err).__name__})"
    if weights_fingerprint(model) != recorded:
        return None, f"its weights are not the epoch-{entry['epochs_done']} weights recorded"
    return model, None


def load_checkpoint(directory: Path, key: str) -> tuple[Checkpoint | None, str]:
    """The newest checkpoint of this training key that proves to be the one written, and a
    one-line notice when a checkpoint was rejected ("" when none was).

    None: train from the start (no checkpoint, another training key, or none proved true).
    """
    state = _read_pointer(directory)
    if state is None:
        if (directory / POINTER).exists():
            return None, f"train: {directory / POINTER} is unreadable; training starts over"
        return None, ""
    if state.get("key") != key:
        return None, ""  # checkpoints of other training inputs: not this training's
    fingerprints = state.get("epoch_fingerprints")
    history = state.get("history")
    if not isinstance(fingerprints, list) or not isinstance(history, dict):
        return None, f"train: {directory / POINTER} is incomplete; training starts over"
    rejected: list[str] = []
    for entry in reversed(_listed(directory, key)):
        done = entry.get("epochs_done")
        if not isinstance(done, int) or not 0 < done <= len(fingerprints):
            continue
        model, why = _load_verified(directory, entry, fingerprints[done - 1])
        if model is None:
            rejected.append(f"{_stem(done)} ({why})")
            continue
        restored = {
            **state,
            "epochs_done": done,
            "epoch_fingerprints": fingerprints[:done],
            "history": {k: v[:done] for k, v in history.items() if isinstance(v, list)},
        }
        notice = (
            f"train: rejected checkpoint {'; '.join(rejected)}: resuming after epoch {done} "
            "from the previous checkpoint instead"
            if rejected
            else ""
        )
        return Checkpoint(done, model, restored), notice
    if not rejected:
        return None, f"train: {directory / POINTER} lists no checkpoint; training starts over"
    return None, f"train: rejected checkpoint {'; '.join(rejected)}: training starts over"
