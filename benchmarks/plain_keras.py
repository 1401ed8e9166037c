"""The baseline: the same work as `python -m flows.train`, in plain Keras.

Same data (the synthetic shapes generator), same split sizes, same CNN, epochs,
batch size and per-epoch albumentations augmentation — but no Prefect, no
manifest, no fingerprints, no explicit seeding, no op determinism, no pinned threads.

    python -m benchmarks.plain_keras [--n-samples 1200 --image-size 24 --epochs 10 ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

#: What the baseline must never import (what seedtrail pays for and plain Keras does not).
UNFAIR = ("prefect", "seedtrail.core.stage_cache", "tasks")


def plain_cnn(input_shape: tuple[int, ...], filters: str, dense_units: int, n_classes: int):
    """The built-in CNN as a Keras user writes it (conv+pool per width in `filters`, "16,32")."""
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input(input_shape)])
    for f in (int(v) for v in filters.split(",")):
        model.add(layers.Conv2D(f, 3, padding="same", activation="relu"))
        model.add(layers.MaxPooling2D(2))
    model.add(layers.Flatten())
    model.add(layers.Dense(dense_units, activation="relu"))
    model.add(layers.Dropout(0.25))
    model.add(layers.Dense(n_classes, activation="softmax"))
    return model


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n-samples", type=int, default=1200)
    p.add_argument("--image-size", type=int, default=24)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--filters", default="16,32")
    p.add_argument("--dense-units", type=int, default=64)
    args = p.parse_args()

    import albumentations as A
    import cv2
    import keras
    import numpy as np
    from sklearn.model_selection import train_test_split

    from seedtrail.inputs.datasets import synthetic_shapes

    x, y = synthetic_shapes(args.n_samples, args.image_size, 4, 0.15, seed=0)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.2, stratify=y)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=0.125, stratify=y_rest
    )

    aug = A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(rotate=(-15, 15), translate_percent=(-0.1, 0.1), scale=(0.9, 1.1),
                     border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.9),
            A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5),
            A.GaussNoise(std_range=(0.0, 0.02), p=0.5),
        ]
    )  # fmt: skip

    model = plain_cnn(x.shape[1:], args.filters, args.dense_units, 4)
    model.compile(
        optimizer=keras.optimizers.Adam(0.003),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    for epoch in range(args.epochs):
        x_epoch = np.stack([aug(image=img)["image"] for img in x_train]).clip(0, 1)
        model.fit(
            x_epoch, y_train, batch_size=args.batch_size, epochs=epoch + 1, initial_epoch=epoch,
            validation_data=(x_val, y_val), verbose=0,
        )  # fmt: skip
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:  # it saves the model too, as the flow does
        model.save(os.path.join(tmp, "model.keras"))
    print(f"plain keras: test accuracy {acc:.4f} loss {loss:.4f}")
    # The baseline must not pay for what it is compared against (Prefect's import and
    # memory): the harness (benchmarks/run.py) refuses a run that names a module here.
    print("plain keras imported:", sorted(m for m in UNFAIR if m in sys.modules))


if __name__ == "__main__":
    main()
