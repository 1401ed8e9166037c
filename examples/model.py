"""A user's model builder: `--model.builder examples.model:build --model.options '{"filters": [8, 16]}'`.

seedtrail calls `build(input_shape, n_classes, **options)` after seeding Python, numpy and
TensorFlow from the model stage's seed. Declaring `seed` is optional: here it gives every
layer an explicit seed, the most robust choice. A builder without it is reproducible as
well, as long as it draws no randomness of its own (seedtrail checks by building twice).
"""

from __future__ import annotations

import keras

from examples.blocks import conv_block


def build(
    input_shape: tuple[int, ...],
    n_classes: int,
    *,
    seed: int,
    filters: tuple[int, ...] | list[int] = (8, 16),  # JSON options give a list
    dropout: float = 0.2,
) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="image")
    h = inputs
    for i, f in enumerate(filters):
        h = conv_block(h, int(f), seed + i, name=f"block{i}")
    h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    h = keras.layers.Dropout(dropout, seed=seed + 100, name="dropout")(h)
    outputs = keras.layers.Dense(
        n_classes,
        activation="softmax",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 200),
        name="classes",
    )(h)
    return keras.Model(inputs, outputs, name="example_cnn")


def build_plain(input_shape: tuple[int, ...], n_classes: int, units: int = 32) -> keras.Model:
    """The same idea without any explicit seed: seedtrail's seeding alone makes it reproducible."""
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(n_classes, activation="softmax"),
        ]
    )
