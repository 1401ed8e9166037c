"""Model stage: build the Keras model; every initializer and Dropout gets an explicit seed.

Layers without a seed draw one from Python's `random` when constructed, so one
stray `random.random()` would change the weights; here nothing is left to chance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seedtrail import tf_runtime
from seedtrail.keras_io import save_model, weights_fingerprint
from seedtrail.stage import stage
from seedtrail.stage_cache import StageContext
from seedtrail.stage_result import StageOutput, StageResult
from seedtrail.store import load_arrays
from settings.model import ModelSettings
from settings.seeds import derive_seed


class _Seeds:
    """Hands out layer seeds in build order: seed i = derive_seed(model_seed, i)."""

    def __init__(self, model_seed: int) -> None:
        self.model_seed, self.i = model_seed, 0

    def __call__(self) -> int:
        self.i += 1
        return derive_seed(self.model_seed, self.i - 1)


def build_model(
    s: ModelSettings,
    seed: int,
    input_shape: tuple[int, ...],
    n_classes: int,
    modality: str,
    feature_mean: np.ndarray | None = None,
    feature_var: np.ndarray | None = None,
):
    """A small CNN for images or an MLP for tabular rows, with seeded initializers."""
    tf_runtime.load()
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)  # defensive: nothing below should read global state
    seeds = _Seeds(seed)

    def dense(units: int, activation: str | None, name: str) -> layers.Dense:
        return layers.Dense(
            units,
            activation=activation,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seeds()),
            bias_initializer="zeros",
            name=name,
        )

    inputs = keras.Input(shape=input_shape, name="x")
    h = inputs
    if modality == "image":
        side = min(input_shape[:2])
        for i, filters in enumerate(s.conv_filters):
            h = layers.Conv2D(
                filters,
                3,
                padding="same",
                activation="relu",
                kernel_initializer=keras.initializers.HeUniform(seed=seeds()),
                bias_initializer="zeros",
                name=f"conv{i}",
            )(h)
            if side >= 4:  # pool while there is room
                h = layers.MaxPooling2D(2, name=f"pool{i}")(h)
                side //= 2
        h = layers.Flatten(name="flatten")(h)
    else:
        h = layers.Normalization(mean=feature_mean, variance=feature_var, name="standardize")(h)
    h = dense(s.dense_units, "relu", "hidden")(h)
    h = layers.Dropout(s.dropout, seed=seeds(), name="dropout")(h)
    outputs = dense(n_classes, "softmax", "output")(h)
    return keras.Model(inputs, outputs, name=f"seedtrail_{modality}")


@stage()
def run_model(
    ctx: StageContext, s: ModelSettings, seed: int, data: StageResult, split: StageResult
) -> StageOutput:
    tf_runtime.ensure()
    info = data.info
    mean = var = None
    if info["modality"] == "tabular":  # standardize with training rows only
        x = load_arrays(Path(data.outputs["arrays"]), data.fingerprint)["x"]
        train = load_arrays(Path(split.outputs["indices"]), split.fingerprint)["train"]
        mean = x[train].mean(axis=0, dtype=np.float64).astype(np.float32)
        var = x[train].var(axis=0, dtype=np.float64).astype(np.float32)
    model = build_model(
        s, seed, tuple(info["sample_shape"]), info["n_classes"], info["modality"], mean, var
    )
    fp = weights_fingerprint(model)
    path = ctx.store / "models" / f"{fp}.keras"
    save_model(model, path)
    return StageOutput(
        fp,
        outputs={"initial_model": str(path)},
        info={"parameters": int(model.count_params()), "fingerprint_of": "initial weights"},
    )
