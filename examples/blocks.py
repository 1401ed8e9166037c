"""A helper module of the example project: the model imports it, so its source is fingerprinted too."""

from __future__ import annotations

import keras


def conv_block(h, filters: int, seed: int, name: str):
    """Conv 3x3 + batch norm + ReLU + max-pool, with an explicit initializer seed."""
    h = keras.layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer=keras.initializers.HeNormal(seed=seed),
        name=f"{name}_conv",
    )(h)
    h = keras.layers.BatchNormalization(name=f"{name}_bn")(h)
    h = keras.layers.ReLU(name=f"{name}_relu")(h)
    return keras.layers.MaxPooling2D(2, name=f"{name}_pool")(h)
