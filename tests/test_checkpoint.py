"""A checkpoint is used only if it is the one this run wrote: files by sha256, weights by fingerprint.

In-process, on a tiny real Keras model trained for real; the end-to-end cases (kill -9,
a checkpoint copied in from another seed's run, a flipped byte, then --resume) are in
tests/test_resume_cache.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from seedtrail.runtime import checkpoint
from seedtrail.runtime.checkpoint import POINTER, load_checkpoint, save_checkpoint
from seedtrail.runtime.keras_io import weights_fingerprint

# Real training in-process (TensorFlow, a few seconds a case).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tensorflow_as_runs_configure_it")]

KEY = "train-key"


def _model(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    m = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.5, seed=seed),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return m


def _train(directory: Path, seed: int, epochs: int) -> list[str]:
    """Train `epochs` epochs, checkpointing each as run_train does; the epoch fingerprints."""
    model = _model(seed)
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 2, 32)
    fps: list[str] = []
    history: dict[str, list[float]] = {}
    for e in range(epochs):
        h = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        history.setdefault("loss", []).append(float(h.history["loss"][-1]))
        fps.append(weights_fingerprint(model))
        state = {"key": KEY, "history": history, "epoch_fingerprints": fps}
        save_checkpoint(directory, model, e + 1, state)
    return fps


def test_the_checkpoint_written_is_used_and_two_are_kept(tmp_path: Path) -> None:
    fps = _train(tmp_path, 0, 3)
    assert sorted(p.name for p in tmp_path.glob("epoch-*")) == [
        "epoch-0002.keras", "epoch-0002.npz", "epoch-0003.keras", "epoch-0003.npz",
    ]  # fmt: skip
    ckpt, notice = load_checkpoint(tmp_path, KEY)
    assert notice == "" and ckpt is not None and ckpt.epochs_done == 3
    assert weights_fingerprint(ckpt.model) == fps[-1]
    assert ckpt.state["epoch_fingerprints"] == fps


def _swap_in(directory: Path, donor: Path, stem: str = "epoch-0003") -> None:
    for path in donor.glob(f"{stem}.*"):
        shutil.copy(path, directory / path.name)


def test_a_checkpoint_from_another_seeds_run_is_rejected_for_the_previous_one(
    tmp_path: Path,
) -> None:
    mine, other = tmp_path / "mine", tmp_path / "other"
    fps = _train(mine, 0, 3)
    _train(other, 1, 3)
    _swap_in(mine, other)
    ckpt, notice = load_checkpoint(mine, KEY)
    assert ckpt is not None and ckpt.epochs_done == 2
    assert weights_fingerprint(ckpt.model) == fps[1]
    assert ckpt.state["epoch_fingerprints"] == fps[:2]
    assert all(len(v) == 2 for v in ckpt.state["history"].values())
    assert "\n" not in notice and "rejected checkpoint epoch-0003" in notice
    assert "epoch-0003.keras changed since it was written" in notice
    assert "resuming after epoch 2" in notice


def test_a_flipped_byte_is_caught_before_keras_reads_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _train(tmp_path, 0, 3)
    path = tmp_path / "epoch-0003.keras"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    loaded: list[str] = []
    real = checkpoint.load_model
    monkeypatch.setattr(
        checkpoint, "load_model", lambda p, **kw: loaded.append(p.name) or real(p, **kw)
    )
    ckpt, notice = load_checkpoint(tmp_path, KEY)
    assert loaded == ["epoch-0002.keras"]  # the corrupted file never reached the loader
    assert ckpt is not None and ckpt.epochs_done == 2 and "epoch-0003.keras changed" in notice


def test_weights_that_are_not_the_recorded_ones_are_rejected_even_with_matching_hashes(
    tmp_path: Path,
) -> None:
    """A pointer whose file hashes were rewritten for swapped files: the weights still tell."""
    mine, other = tmp_path / "mine", tmp_path / "other"
    _train(mine, 0, 3)
    _train(other, 1, 3)
    _swap_in(mine, other)
    _swap_in(mine, other, "epoch-0002")
    pointer = json.loads((mine / POINTER).read_text())
    donor = json.loads((other / POINTER).read_text())
    pointer["checkpoints"] = donor["checkpoints"]
    (mine / POINTER).write_text(json.dumps(pointer))
    ckpt, notice = load_checkpoint(mine, KEY)
    assert ckpt is None
    assert "are not the epoch-3 weights recorded" in notice and "training starts over" in notice


def test_no_trusted_checkpoint_left_starts_over_in_one_line(tmp_path: Path) -> None:
    _train(tmp_path, 0, 2)
    for p in tmp_path.glob("epoch-*.npz"):
        p.write_bytes(b"junk")
    ckpt, notice = load_checkpoint(tmp_path, KEY)
    assert ckpt is None and "\n" not in notice
    assert "epoch-0002 (epoch-0002.npz changed" in notice and "epoch-0001" in notice
    assert notice.endswith("training starts over")


def test_another_keys_checkpoints_are_silently_not_this_trainings(tmp_path: Path) -> None:
    _train(tmp_path, 0, 1)
    assert load_checkpoint(tmp_path, "other-key") == (None, "")
