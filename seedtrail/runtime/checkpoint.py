"""Per-epoch training checkpoints, written so that a kill at any instant leaves a usable one.

A checkpoint is the model file (weights + optimizer state), the Dropout
seed-generator states (which `.keras` files do not hold), and a JSON pointer
`latest.json` written last: it is the commit point. The next epoch's batch
order and augmentation derive from (seed, epoch) alone, so nothing else is needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seedtrail.core import atomic
from seedtrail.core.store import CorruptEntry, load_arrays
from seedtrail.runtime.keras_io import load_model, save_model

POINTER = "latest.json"


def seed_states(model) -> list:
    """The model's SeedGenerator state variables, in build order."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


@dataclass(frozen=True)
class Checkpoint:
    epochs_done: int
    model: Any
    state: dict[str, Any]


def save_checkpoint(directory: Path, model, epochs_done: int, state: dict[str, Any]) -> None:
    stem = f"epoch-{epochs_done:04d}"
    save_model(model, directory / f"{stem}.keras")
    rng = {f"s{i}": v.numpy() for i, v in enumerate(seed_states(model))}
    with atomic.atomic_path(directory / f"{stem}.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **rng)
    atomic.write_json(
        directory / POINTER,
        {"epochs_done": epochs_done, "model": f"{stem}.keras", "rng": f"{stem}.npz", **state},
    )
    for old in directory.glob("epoch-*"):  # keep only the committed checkpoint
        if not old.name.startswith(stem):
            old.unlink(missing_ok=True)


def load_checkpoint(directory: Path, key: str) -> Checkpoint | None:
    """The committed checkpoint for this training key, or None (then train from the start)."""
    pointer = directory / POINTER
    if not pointer.is_file():
        return None
    try:
        state = json.loads(pointer.read_text())
        if state.get("key") != key:
            return None
        model = load_model(directory / state["model"], compile=True)
        rng = load_arrays(directory / state["rng"])
    except (OSError, ValueError, KeyError, CorruptEntry):
        return None
    for i, v in enumerate(seed_states(model)):
        v.assign(rng[f"s{i}"])
    return Checkpoint(state["epochs_done"], model, state)
