"""Keras model files: atomic saves, and weight fingerprints (the .keras zip holds a save date)."""

from __future__ import annotations

from pathlib import Path

from seedtrail.core.atomic import atomic_path
from seedtrail.core.fingerprint import fingerprint_sequence
from seedtrail.runtime import tf_runtime


def weights_fingerprint(model) -> str:
    """sha256 of every variable in order: weights, and the Dropout seed-generator states."""
    return fingerprint_sequence(v.numpy() for v in model.variables)


def save_model(model, path: Path, *, owned: bool = False) -> None:
    """`owned`: a path in the store (a directory there is a corrupt entry, replaced)."""
    with atomic_path(path, suffix=".keras", owned=owned) as tmp:
        model.save(tmp)


def load_model(path: Path, compile: bool = False):
    tf_runtime.import_tf()
    import keras

    return keras.saving.load_model(path, compile=compile)
