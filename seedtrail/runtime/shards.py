"""Sharded steps: each batch split into K fixed shards whose bytes never depend on the cores.

With `training.shards` = K > 1, a step splits its batch into K shards at fixed boundaries
(`(i * n) // K`, so a batch of n samples always splits the same way) and computes each
shard's forward and backward pass as an independent subgraph of the one `tf.function`
Keras compiles. Every kernel runs on one intra-op thread (its result depends on the
intra-op count, a setting); TensorFlow's executor runs independent ops of a graph
concurrently on its inter-op pool, whose size changes when the shards run but never a
byte (docs/parallelism.md). Shard gradients are summed in a fixed order, a left fold
of `tf.add` in shard order, each shard's loss weighted by its share of the batch, so the
sum is the gradient of the batch-mean loss.

The user's model is never changed: `sharded(model, K)` wraps it in a `keras.Model` whose
`train_step`, `test_step` and `predict_step` shard (Keras' public override points), and
whose variables are the model's own. Saving and fingerprints stay with the model.

Batch normalization sees one shard at a time ("ghost" batch normalization): each shard
is normalized with its own statistics, and the moving statistics take K updates per
step, in shard order. K is therefore part of what the model computes, like the batch size.
"""

from __future__ import annotations

import itertools
import os
from typing import Any


def machine_threads() -> int:
    """The cores this process may run on (a container's or taskset's CPU set, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def sharded(model: Any, shards: int) -> Any:
    """`model` wrapped so that Keras' fit, evaluate and predict run its batches in K shards."""
    return _wrapper_class()(model, shards)


_CLASS: type | None = None


def _wrapper_class() -> type:
    """The wrapper class, defined at first use: importing this module loads no TensorFlow."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    import keras
    import tensorflow as tf
    from keras.utils import unpack_x_y_sample_weight

    def first_leaf(x: Any) -> Any:
        return next(t for t in tf.nest.flatten(x) if t is not None)

    def cut(structure: Any, lo: Any, hi: Any) -> Any:
        return tf.nest.map_structure(lambda t: None if t is None else t[lo:hi], structure)

    def left_fold(parts: list[Any]) -> Any:
        """parts[0] + parts[1] + ... in exactly that order (tf.add_n promises no order)."""
        total = parts[0]
        for p in parts[1:]:
            total = tf.add(total, p)
        return total

    class ShardedModel(keras.Model):
        """Runs a model's steps in K fixed shards; its variables are the model's own."""

        def __init__(self, inner: keras.Model, shards: int, **kwargs: Any) -> None:
            super().__init__(name=f"{inner.name}_in_{shards}_shards", **kwargs)
            self.inner = inner
            self.shards = shards

        def call(self, x: Any, training: bool = False) -> Any:
            return self.inner(x, training=training)

        def _bounds(self, x: Any) -> tuple[Any, list[Any]]:
            n = tf.shape(first_leaf(x))[0]
            return n, [(n * i) // self.shards for i in range(self.shards + 1)]

        def train_step(self, data: Any) -> dict[str, Any]:
            x, y, sw = unpack_x_y_sample_weight(data)
            n, bounds = self._bounds(x)
            weights = self.trainable_weights
            n_f = tf.cast(n, "float32")
            preds, losses, grads = [], [], []
            for lo, hi in itertools.pairwise(bounds):
                xk, yk, swk = cut(x, lo, hi), cut(y, lo, hi), cut(sw, lo, hi)
                share = tf.cast(hi - lo, "float32") / n_f

                def run(xk=xk, yk=yk, swk=swk, share=share) -> tuple[Any, Any, list[Any]]:
                    with tf.GradientTape() as tape:
                        pred = self.inner(xk, training=True)
                        # The shard's mean loss (regularization included) times its share:
                        # the shards' losses add up to the batch's.
                        loss = share * self._compute_loss(
                            x=xk, y=yk, y_pred=pred, sample_weight=swk, training=True
                        )
                        scaled = self.optimizer.scale_loss(loss)
                    g = tape.gradient(scaled, weights)
                    return (
                        pred,
                        loss,
                        [
                            tf.zeros_like(w) if d is None else d
                            for w, d in zip(weights, g, strict=True)
                        ],
                    )

                def empty(xk=xk) -> tuple[Any, Any, list[Any]]:
                    # A last batch with fewer samples than shards: no state may see an
                    # empty shard in training mode (batch statistics of nothing are NaN).
                    pred = self.inner(xk, training=False)
                    return pred, tf.zeros((), "float32"), [tf.zeros_like(w) for w in weights]

                pred, loss, g = tf.cond(hi > lo, run, empty)
                preds.append(pred)
                losses.append(loss)
                grads.append(g)
            summed = [left_fold([g[i] for g in grads]) for i in range(len(weights))]
            self.optimizer.apply_gradients(zip(summed, weights, strict=True))
            return self._metrics_of(x, y, sw, n, losses, preds)

        def test_step(self, data: Any) -> dict[str, Any]:
            x, y, sw = unpack_x_y_sample_weight(data)
            n, bounds = self._bounds(x)
            n_f = tf.cast(n, "float32")
            preds, losses = [], []
            for lo, hi in itertools.pairwise(bounds):
                xk, yk, swk = cut(x, lo, hi), cut(y, lo, hi), cut(sw, lo, hi)
                pred = self.inner(xk, training=False)
                # An empty shard's mean loss is 0 (Keras divides with divide_no_nan).
                share = tf.cast(hi - lo, "float32") / n_f
                losses.append(
                    share
                    * self._compute_loss(x=xk, y=yk, y_pred=pred, sample_weight=swk, training=False)
                )
                preds.append(pred)
            return self._metrics_of(x, y, sw, n, losses, preds)

        def predict_step(self, data: Any) -> Any:
            x, _, _ = unpack_x_y_sample_weight(data)
            _, bounds = self._bounds(x)
            preds = [
                self.inner(cut(x, lo, hi), training=False) for lo, hi in itertools.pairwise(bounds)
            ]
            return tf.nest.map_structure(lambda *p: tf.concat(p, axis=0), *preds)

        def _metrics_of(
            self, x: Any, y: Any, sw: Any, n: Any, losses: list[Any], preds: list[Any]
        ) -> dict[str, Any]:
            """Metrics as Keras computes them for one batch: the batch-mean loss, weighted by
            the batch's samples, and the compiled metrics on the whole batch's predictions."""
            self._loss_tracker.update_state(left_fold(losses), sample_weight=n)
            y_pred = tf.nest.map_structure(lambda *p: tf.concat(p, axis=0), *preds)
            return self.compute_metrics(x, y, y_pred, sample_weight=sw)

    _CLASS = ShardedModel
    return _CLASS
