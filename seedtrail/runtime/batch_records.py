"""Per-batch losses and per-variable fingerprints: where training first diverges, to the batch.

Which loss: the batch's own loss, not the running mean Keras 3 puts in `on_train_batch_end`'s
logs. The running mean is `total / count` with `total += loss · batch_size` in float32: once
`total` is a few batches large, a loss that differs in its last bits is absorbed by the
addition's rounding, and the mean first differs batches later (or never). The batch's own loss
is the float32 scalar the gradients were taken of: it differs at the first batch whose
forward pass differs, so the batch it names is exact.

How, without changing what is computed: `install` wraps the model's public `compute_loss`
(the hook Keras documents for overriding) so the training graph also assigns that scalar to a
variable outside the model, read after each batch. The assignment is a side output: the
loss, its gradients and every weight are the same ops as without it (the golden fingerprints
in tests/test_golden.py prove it), and the variable is not the model's, so neither the weights
fingerprint nor model.keras changes.

Values are stored as JSON numbers: the float32 widened to a Python float is exact, and JSON
writes floats with `repr`, which round-trips; `np.float32(value)` gives back the bits.
"""

from __future__ import annotations

from typing import Any

from seedtrail.core.fingerprint import fingerprint_sequence

#: Hex digits kept of each variable's sha256: 64 bits to tell two tensors apart is plenty.
VARIABLE_FP_DIGITS = 16


def variable_fingerprints(model) -> dict[str, str]:
    """path -> short sha256 of each weight (trainable or not), in model order.

    Seed-generator states are not weights: they are in the whole-model fingerprint only.
    """
    out: dict[str, str] = {}
    for v in model.weights:
        path = v.path
        while path in out:  # never drop a variable: two of one path stay two entries
            path += "'"
        out[path] = fingerprint_sequence([v.numpy()])[:VARIABLE_FP_DIGITS]
    return out


class BatchLosses:
    """Records each training batch's own loss; `install` once per compiled model.

    Use `callback()` in fit(); `take()` returns the epoch's losses and starts a new list.
    """

    def __init__(self) -> None:
        import keras

        self.losses: list[float] = []
        self._last = keras.Variable(0.0, dtype="float32", trainable=False, name="batch_loss")

    @property
    def recording(self) -> bool:
        """Under TensorFlow and torch (torch runs the step eagerly: the assignment holds;
        measured, the train bytes are the same with and without it). Not under JAX: it runs
        the step as a pure function (Keras' stateless scope), which drops the assignment to
        a variable outside the model's state, so the losses would read 0.0 (measured).
        Backends not listed record none rather than wrong ones."""
        import keras

        return keras.config.backend() in ("tensorflow", "torch")

    def install(self, model) -> None:
        """Make `model`'s training step also store its loss (call after compile)."""
        import keras

        if not self.recording:
            return
        last = self._last
        if hasattr(model, "batch_loss_hook"):  # a sharded model sums its shards' losses itself
            object.__setattr__(
                model, "batch_loss_hook", lambda loss: last.assign(keras.ops.cast(loss, "float32"))
            )
            return
        original = model.compute_loss

        def compute_loss(x=None, y=None, y_pred=None, sample_weight=None, training=True):
            loss = original(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
            if training:  # a Python bool at trace time: the validation graph is untouched
                last.assign(keras.ops.cast(loss, "float32"))
            return loss

        # An instance attribute: only this model object, and not saved with it.
        object.__setattr__(model, "compute_loss", compute_loss)

    def callback(self) -> Any:
        import keras

        recorder = self

        class RecordBatchLoss(keras.callbacks.Callback):
            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                if recorder.recording:
                    recorder.losses.append(float(recorder._last.numpy()))

        return RecordBatchLoss()

    def take(self) -> list[float]:
        out, self.losses = self.losses, []
        return out
