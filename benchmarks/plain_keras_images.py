"""The pipeline a Keras user would write for an image folder: the baseline of stream_speed.

`keras.utils.image_dataset_from_directory` (80/20 train/validation split), the same
albumentations pipeline file applied with `tf.numpy_function` under
`num_parallel_calls=AUTOTUNE`, `prefetch(AUTOTUNE)`, `keras.utils.set_random_seed` and
op determinism; the same small CNN as seedtrail's built-in one (conv 3x3 + max-pool
blocks, dense, dropout, softmax), Adam, batch 32. Keras' own progress lines (verbose=2)
are what benchmarks/stream_speed.py times, for both pipelines alike.

    python -m benchmarks.plain_keras_images FOLDER --size 96 --pipeline aug.json --epochs 2
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


from benchmarks.plain_keras import plain_cnn


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--pipeline", required=True, help="albumentations file (A.save)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--filters", default="8,16")
    p.add_argument("--dense-units", type=int, default=32)
    args = p.parse_args()

    import albumentations as A
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    aug = A.load(args.pipeline, data_format="json")

    def augment(image: np.ndarray) -> np.ndarray:
        return np.clip(aug(image=image)["image"], 0.0, 1.0).astype(np.float32)

    def tf_augment(image, label):
        out = tf.numpy_function(augment, [image], tf.float32)
        out.set_shape(image.shape)
        return out, label

    train, val = keras.utils.image_dataset_from_directory(
        args.folder,
        image_size=(args.size, args.size),
        batch_size=None,
        validation_split=0.2,
        subset="both",
        seed=0,
    )
    n_classes = len(train.class_names)
    scale = lambda x, y: (x / 255.0, y)  # noqa: E731
    train = (
        train.map(scale, num_parallel_calls=tf.data.AUTOTUNE)
        .map(tf_augment, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(args.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    val = val.map(scale).batch(args.batch_size).prefetch(tf.data.AUTOTUNE)

    model = plain_cnn((args.size, args.size, 3), args.filters, args.dense_units, n_classes)
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy")

    class FirstStep(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0 and not hasattr(self, "seen"):
                self.seen = True
                t0 = float(os.environ.get("BENCH_T0", "nan"))
                print(f"first training step at {time.time() - t0:.1f} s", flush=True)

    model.fit(train, validation_data=val, epochs=args.epochs, verbose=2, callbacks=[FirstStep()])


if __name__ == "__main__":
    main()
