"""`python -m benchmarks.stream_mechanism FOLDER`: which mechanism feeds batches fastest (no model).

Produces every augmented batch of one epoch over the first --count images of an indexed
folder, and reports images/s for:
- threads (seedtrail's PyDataset through Keras' enqueuer, predict on an identity model):
  1 and 2 workers, from the pixel cache and from the files (decode + resize each time);
- processes: a multiprocessing pool computing the same batches (pickled back);
- tf.data: `numpy_function` map with AUTOTUNE under op determinism (as runs have it).
The augmentation is seedtrail's built-in one (tasks/augment.py). Writes
benchmarks/results/stream_mechanism.json.

    python -m benchmarks.stream_mechanism /tmp/img4k --count 1280
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.run import RESULTS

BATCH = 32
_STATE: dict = {}


def _init(index_path: str, store: str, cached: bool) -> None:
    from seedtrail.inputs.index import ImageIndex
    from seedtrail.inputs.pixels import open_cache
    from seedtrail.inputs.stream import IndexSource
    from settings.model import AugmentSettings
    from tasks.augment import build_augmenter, epoch_words

    index = ImageIndex.load(Path(index_path))
    cache = open_cache(Path(store), index) if cached else None
    _STATE.update(
        source=IndexSource(index, cache),
        aug=build_augmenter(AugmentSettings()),
        words=epoch_words(7, 0, len(index)),
    )


def _batch(idx: np.ndarray) -> np.ndarray:
    from tasks.augment import augment_images

    s = _STATE
    return augment_images(s["aug"], s["source"].images(idx), s["words"][idx])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--count", type=int, default=1280)
    p.add_argument("--size", type=int, default=96)
    a = p.parse_args(argv)

    from seedtrail.runtime import hardware, tf_runtime
    from settings.model import AugmentSettings, DeterminismSettings

    tf_runtime.configure(DeterminismSettings(), 0, hardware.expected_devices(hardware.gpu_facts()))
    tf_runtime.configured_tf()
    import keras
    import tensorflow as tf

    from seedtrail.inputs.index import build_index
    from seedtrail.inputs.pixels import ensure_cache
    from seedtrail.inputs.stream import IndexSource, batches
    from tasks.augment import batch_augmenter, epoch_words

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        index = build_index(a.folder, a.size, store=store)
        cache = ensure_cache(store, index)
        index_path = index.save(store)
        order = np.random.default_rng(0).permutation(len(index))[: a.count]
        words = epoch_words(7, 0, len(index))
        identity = keras.Sequential([keras.Input(index.sample_shape), keras.layers.Flatten()])

        def timed(name: str, fn) -> None:
            t = time.perf_counter()
            fn()
            results[name] = round(len(order) / (time.perf_counter() - t), 1)
            print(f"{name:<45} {results[name]:>8.1f} images/s", flush=True)

        for cached in (True, False):
            src = IndexSource(index, cache if cached else None)
            for w in (1, 2):
                ds = batches(src, order, BATCH, workers=w, words=words,
                             make_augmenter=lambda: batch_augmenter(AugmentSettings()))  # fmt: skip
                where = "pixel cache" if cached else "files"
                timed(f"threads (PyDataset), {where}, {w} worker(s)",
                      lambda ds=ds: identity.predict(ds, verbose=0))  # fmt: skip

        chunks = [order[i : i + BATCH] for i in range(0, len(order), BATCH)]
        for cached in (True, False):
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(2, _init, (str(index_path), str(store), cached)) as pool:
                pool.map(_batch, chunks[:2])  # started and warm
                where = "pixel cache" if cached else "files"
                timed(f"processes (Pool), {where}, 2 workers",
                      lambda pool=pool: list(pool.imap(_batch, chunks)))  # fmt: skip

        _init(str(index_path), str(store), True)

        def one(i):
            return _batch(np.array([int(i)]))[0]

        def tf_data() -> None:
            ds = tf.data.Dataset.from_tensor_slices(order).map(
                lambda i: tf.numpy_function(one, [i], tf.float32),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
            for _ in ds.batch(BATCH).prefetch(tf.data.AUTOTUNE):
                pass

        timed("tf.data numpy_function AUTOTUNE, op determinism", tf_data)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stream_mechanism.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
