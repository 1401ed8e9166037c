"""The input pipeline of indexed datasets: decode -> resize -> augment -> batch, in workers.

One `keras.utils.PyDataset` feeds training, validation and evaluation batch by batch.
Batch b of an epoch holds samples `order[b*B:(b+1)*B]`, where `order` is the epoch's
permutation; Keras' enqueuer computes batches in `workers` threads and hands them out in
index order, so workers only change when a batch is ready, never what is in it. Each
sample is augmented from its own 128-bit state (tasks/augment.py: words 4i..4i+3 of the
(augment seed, epoch) block, i the dataset index) by a per-thread augmenter, so the
bytes depend on (file bytes, decode settings, augment seed, epoch, index) only: 1, 2 and
4 workers give identical fingerprints (tests/test_stream.py).

Why threads in a PyDataset (docs/data.md has the measurements): it runs on every Keras
backend; OpenCV's decode, resize and warps and numpy's array ops release the GIL, so
threads scale on these cores without pickling batches between processes; and under op
determinism tf.data would run a stateful `numpy_function` map serially.

Pixels come from the resized-uint8 cache (seedtrail/inputs/pixels.py) when there is one,
else straight from the files (each file hashed as it is read and checked against the
index). Only the batches in flight are in memory: at most `max_queue_size` of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from seedtrail.inputs.index import ImageIndex, default_workers
from seedtrail.inputs.pixels import PixelCache, ensure_cache, read_file

SCALE = np.float32(255.0)


class IndexSource:
    """Samples of an indexed folder as float32 in [0, 1], from the pixel cache or the files."""

    def __init__(self, index: ImageIndex, cache: PixelCache | None) -> None:
        self.index, self.cache = index, cache
        self.labels = index.label_array()
        self.sample_shape = index.sample_shape

    def __len__(self) -> int:
        return len(self.index)

    def uint8(self, indices: np.ndarray) -> np.ndarray:
        """Samples `indices` as uint8, read straight into one batch buffer."""
        out = np.empty((len(indices), *self.sample_shape), dtype=np.uint8)
        if self.cache is not None:
            for j, i in enumerate(indices):
                self.cache.read_into(int(i), out[j])
        else:
            for j, i in enumerate(indices):
                out[j] = read_file(self.index, int(i))
        return out

    def images(self, indices: np.ndarray) -> np.ndarray:
        return to_float(self.uint8(indices))


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1] in one pass, as seedtrail/inputs/image_folder.py scales 8-bit
    pixels: the same bytes as `pixels.astype(np.float32) / SCALE` (uint8 -> float32 is exact,
    then one float32 division), without the intermediate float32 array."""
    return np.divide(pixels, SCALE, out=np.empty(pixels.shape, np.float32), dtype=np.float32)


def open_source(
    index_path: Path, store: Path, *, use_cache: bool = True, workers: int | None = None
) -> IndexSource:
    """The index recorded by the data stage; its pixel cache, built if missing and wanted."""
    index = ImageIndex.load(Path(index_path))
    cache = ensure_cache(store, index, workers) if use_cache else None
    return IndexSource(index, cache)


_BATCHES: type | None = None
#: Batches Keras' PyDataset adapter reads ahead to learn the output signature (Keras 3:
#: `NUM_BATCHES_FOR_TENSOR_SPEC`, a private name): kept for the workers' own read.
PEEKED = 2


def _batches_class() -> type:
    """Defined on first use: Keras may load only after TensorFlow is configured."""
    global _BATCHES
    if _BATCHES is not None:
        return _BATCHES
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(
            self,
            source: IndexSource,
            indices: np.ndarray,
            batch_size: int,
            workers: int,
            make_augmenter: Callable[[], Any] | None,
            words: np.ndarray | None,
        ) -> None:
            super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
            self.source, self.indices, self.batch_size = source, np.asarray(indices), batch_size
            self.make_augmenter, self.words = make_augmenter, words
            self._local = threading.local()
            self.error: BaseException | None = None
            self._peeked: dict[int, tuple[np.ndarray, np.ndarray]] = {}
            self._peek_lock = threading.Lock()

        def __len__(self) -> int:
            return -(-len(self.indices) // self.batch_size)

        def _augmenter(self) -> Any:
            aug = getattr(self._local, "augmenter", None)
            if aug is None:  # one per thread: an augmenter carries its random state
                aug = self._local.augmenter = self.make_augmenter()
            return aug

        def __getitem__(self, b: int) -> tuple[np.ndarray, np.ndarray]:
            # Keras' adapter computes the first batches once in every fit()/evaluate() call
            # to learn their shapes, then its workers compute them again: the first batches
            # are kept for that second call. A batch depends on its index alone (same bytes),
            # and at most PEEKED batches are held.
            with self._peek_lock:
                kept = self._peeked.pop(b, None)
            if kept is not None:
                return kept
            batch = self._compute(b)
            if b < PEEKED:
                with self._peek_lock:
                    self._peeked.setdefault(b, batch)
            return batch

        def _compute(self, b: int) -> tuple[np.ndarray, np.ndarray]:
            try:
                idx = self.indices[b * self.batch_size : (b + 1) * self.batch_size]
                x = self.source.images(idx)
                if self.make_augmenter is not None:
                    x = self._augmenter()(x, self.words[idx])
                return x, self.source.labels[idx]
            except BaseException as err:  # Keras/tf.data rewrap it; the stage re-raises this
                if self.error is None:
                    self.error = err
                raise

    _BATCHES = Batches
    return Batches


def batches(
    source: IndexSource,
    indices: np.ndarray,
    batch_size: int,
    *,
    workers: int | None = None,
    make_augmenter: Callable[[], Any] | None = None,
    words: np.ndarray | None = None,
) -> Any:
    """A PyDataset of `source[indices]` in that order, augmented when `make_augmenter` is given.

    `make_augmenter()` returns a function (images, states) -> images for a batch (e.g.
    tasks/augment.py's `augment_images` bound to a fresh augmenter); it is called once per
    worker thread. `words` is the epoch's (n_samples, 4) block of per-sample states.
    """
    return _batches_class()(
        source, indices, batch_size, workers or default_workers(), make_augmenter, words
    )


def reraise_input_error(*datasets: Any) -> None:
    """After a failed fit/predict: raise the input pipeline's own error, if it had one."""
    for ds in datasets:
        err = getattr(ds, "error", None)
        if err is not None:
            raise err
