"""Train stage: explicit per-epoch batch order from the train seed, fresh augmentation each epoch.

`model.fit(shuffle=True)` would shuffle with TF's global seed; instead each epoch
is fed in the order of a permutation drawn from SeedSequence(train_seed, (epoch,)),
with shuffle=False. The weights are fingerprinted after every epoch.
"""

from __future__ import annotations

import sys
from pathlib import Path

from prefect import task

from seedtrail import atomic
from seedtrail.keras_io import load_model, save_model, weights_fingerprint
from seedtrail.plots import training_curves
from seedtrail.stage import StageResult, stopwatch
from seedtrail.store import load_arrays
from settings.model import AugmentSettings, TrainingSettings
from settings.seeds import epoch_rng
from tasks.augment import augment_epoch, build_augmenter

VERSION = "1"
DETERMINISTIC = True


def _one_epoch_callback():
    """Stops fit() after one epoch, so Keras' progress still reads "Epoch e/E"."""
    import keras

    class OneEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    return OneEpoch()


def make_optimizer(s: TrainingSettings):
    import keras

    if s.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=s.learning_rate, momentum=0.9)
    return keras.optimizers.Adam(learning_rate=s.learning_rate)


def run_train(
    s: TrainingSettings,
    seed: int,
    augment_settings: AugmentSettings,
    augment: StageResult,
    data: StageResult,
    split: StageResult,
    model_stage: StageResult,
    run_dir: Path,
) -> StageResult:
    with stopwatch() as elapsed:
        import keras

        keras.utils.set_random_seed(seed)
        arrays = load_arrays(Path(data.outputs["arrays"]), data.fingerprint)
        idx = load_arrays(Path(split.outputs["indices"]), split.fingerprint)
        x, y = arrays["x"], arrays["y"]
        model = load_model(Path(model_stage.outputs["initial_model"]))
        model.compile(
            optimizer=make_optimizer(s),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=False,  # XLA is off under op determinism anyway; say so
        )
        augmenter = None if augment.skipped else build_augmenter(augment_settings)
        x_val, y_val = x[idx["val"]], y[idx["val"]]
        verbose = 1 if sys.stdout.isatty() else 2
        one_epoch = _one_epoch_callback()
        history: dict[str, list[float]] = {}
        epoch_fingerprints: list[str] = []
        for epoch in range(s.epochs):
            order = epoch_rng(seed, epoch).permutation(idx["train"])
            x_epoch = (
                x[order]
                if augmenter is None
                else augment_epoch(augmenter, x, order, augment.seed, epoch)
            )
            h = model.fit(
                x_epoch,
                y[order],
                batch_size=s.batch_size,
                epochs=s.epochs,
                initial_epoch=epoch,
                callbacks=[one_epoch],
                shuffle=False,
                validation_data=(x_val, y_val),
                verbose=verbose,
            )
            for key, values in h.history.items():
                history.setdefault(key, []).append(float(values[-1]))
            epoch_fingerprints.append(weights_fingerprint(model))

        model_path = run_dir / "model.keras"
        save_model(model, model_path)
        atomic.write_json(run_dir / "history.json", history)
        curves = run_dir / "training_curves.png"
        training_curves(history, curves, f"seed {seed} · {s.epochs} epochs")
    return StageResult(
        "train",
        seed,
        epoch_fingerprints[-1],
        elapsed(),
        outputs={
            "model": str(model_path),
            "history": str(run_dir / "history.json"),
            "training_curves": str(curves),
        },
        info={
            "fingerprint_of": "final weights",
            "epoch_fingerprints": epoch_fingerprints,
            "final": {k: v[-1] for k, v in history.items()},
        },
    )


@task(name="train")
def train_task(
    s: TrainingSettings,
    seed: int,
    augment_settings: AugmentSettings,
    augment: StageResult,
    data: StageResult,
    split: StageResult,
    model_stage: StageResult,
    run_dir: Path,
) -> StageResult:
    return run_train(s, seed, augment_settings, augment, data, split, model_stage, run_dir)
