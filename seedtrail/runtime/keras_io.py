"""Keras model files: atomic saves, and weight fingerprints (the .keras zip holds a save date).

Each file seedtrail saves also names the Keras backend that computed it (a small member
`seedtrail.json` in the zip, which Keras ignores): its weights and seed-generator states
are that backend's bytes, and its Dropout seeds that backend's PRNG state, so a model
saved under one backend and loaded to continue under another would not be the same model.
seedtrail refuses that load in one line; a file without the member (saved by plain Keras
or before it existed) loads as before.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from seedtrail.core.atomic import atomic_path
from seedtrail.core.errors import InputError
from seedtrail.core.fingerprint import fingerprint_sequence
from seedtrail.runtime import tf_runtime

MARKER = "seedtrail.json"


def weights_fingerprint(model) -> str:
    """sha256 of every variable in order: weights, and the Dropout seed-generator states."""
    return fingerprint_sequence(v.numpy() for v in model.variables)


def save_model(model, path: Path, *, owned: bool = False) -> None:
    """`owned`: a path in the store (a directory there is a corrupt entry, replaced)."""
    import keras

    with atomic_path(path, suffix=".keras", owned=owned) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as zf:
            zf.writestr(MARKER, json.dumps({"keras_backend": keras.config.backend()}))


def saved_backend(path: Path) -> str | None:
    """The backend a seedtrail model file was saved under (None: not recorded)."""
    try:
        with zipfile.ZipFile(path) as zf:
            if MARKER not in zf.namelist():
                return None
            return json.loads(zf.read(MARKER)).get("keras_backend")
    except (OSError, zipfile.BadZipFile, ValueError):
        return None  # Keras' own load names what is wrong with the file


def load_model(path: Path, compile: bool = False, *, any_backend: bool = False):
    """`any_backend`: only the weights are read (compare's drift), from any backend's file."""
    tf_runtime.import_tf()
    import keras

    running = keras.config.backend()
    saved = saved_backend(Path(path))
    if not any_backend and saved is not None and saved != running:
        raise InputError(
            f"{path}: saved under the Keras {saved} backend, this process runs {running}: "
            f"load it under {saved} (--backend {saved}); its weights and seed states are "
            f"{saved}'s bytes"
        )
    return keras.saving.load_model(path, compile=compile)
