"""seedtrail's own models, written as model builders like any user's (seedtrail/inputs/model_builder.py).

`cnn` for images, `mlp` for tables. Every initializer and Dropout gets an explicit seed,
`derive_seed(seed, i)` for the i-th seeded layer in build order: a layer without one draws
it from Python's `random` when constructed, so one stray `random.random()` anywhere
would change the weights. These are the layers and seeds the model stage always built,
so the default run keeps its bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seedtrail.runtime import backends, tf_runtime
from settings.seeds import derive_seed


class _Seeds:
    """Hands out layer seeds in build order: seed i = derive_seed(model_seed, i), handed to
    Keras as backends.keras_seed makes it (folded into int32 under torch only)."""

    def __init__(self, model_seed: int) -> None:
        self.model_seed, self.i = model_seed, 0

    def __call__(self) -> int:
        self.i += 1
        return backends.keras_seed(derive_seed(self.model_seed, self.i - 1))


def _head(h, seeds: _Seeds, n_classes: int, dense_units: int, dropout: float):
    import keras
    from keras import layers

    def dense(units: int, activation: str, name: str) -> layers.Dense:
        return layers.Dense(
            units,
            activation=activation,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seeds()),
            bias_initializer="zeros",
            name=name,
        )

    h = dense(dense_units, "relu", "hidden")(h)
    h = layers.Dropout(dropout, seed=seeds(), name="dropout")(h)
    return dense(n_classes, "softmax", "output")(h)


def cnn(
    input_shape: tuple[int, ...],
    n_classes: int,
    *,
    seed: int,
    conv_filters: Sequence[int] = (16, 32),
    dense_units: int = 64,
    dropout: float = 0.25,
):
    """Conv 3x3 + max-pool blocks (pooling while the side is >= 4), dense, dropout, softmax."""
    tf_runtime.import_tf()
    import keras
    from keras import layers

    seeds = _Seeds(seed)
    inputs = keras.Input(shape=tuple(input_shape), name="x")
    h = inputs
    side = min(input_shape[:2])
    for i, filters in enumerate(conv_filters):
        h = layers.Conv2D(
            int(filters),
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
    outputs = _head(h, seeds, n_classes, dense_units, dropout)
    return keras.Model(inputs, outputs, name="seedtrail_image")


def standardization(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance of the training rows, in float64 then float32."""
    mean = x_train.mean(axis=0, dtype=np.float64).astype(np.float32)
    var = x_train.var(axis=0, dtype=np.float64).astype(np.float32)
    return mean, var


def mlp(
    input_shape: tuple[int, ...],
    n_classes: int,
    *,
    seed: int,
    x_train: np.ndarray,
    dense_units: int = 64,
    dropout: float = 0.25,
):
    """Standardize with the training rows' statistics, then dense, dropout, softmax."""
    tf_runtime.import_tf()
    import keras
    from keras import layers

    mean, var = standardization(x_train)
    inputs = keras.Input(shape=tuple(input_shape), name="x")
    h = layers.Normalization(mean=mean, variance=var, name="standardize")(inputs)
    outputs = _head(h, _Seeds(seed), n_classes, dense_units, dropout)
    return keras.Model(inputs, outputs, name="seedtrail_tabular")
