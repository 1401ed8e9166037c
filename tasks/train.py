"""Train stage: explicit per-epoch batch order from the train seed, fresh augmentation each epoch.

`model.fit(shuffle=True)` would shuffle with TF's global seed; instead each epoch
is fed in the order of a permutation drawn from SeedSequence(train_seed, (epoch,)),
with shuffle=False. After every epoch the weights are fingerprinted and a
checkpoint is committed, so an interrupted run resumes to the same bytes; a checkpoint
is used only if it proves to be the one written (seedtrail/runtime/checkpoint.py).

In-memory datasets are augmented a whole epoch at a time, as before (their bytes are
the golden ones); an indexed image folder is streamed batch by batch in that same order
(seedtrail/inputs/stream.py), in `data.workers` threads that never change the bytes.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from prefect import get_run_logger

from seedtrail.core import atomic
from seedtrail.core.stage import log_to_run, stage
from seedtrail.core.stage_cache import StageContext
from seedtrail.core.stage_result import StageOutput, StageResult
from seedtrail.core.store import load_arrays
from seedtrail.inputs import records
from seedtrail.inputs.stream import batches, reraise_input_error
from seedtrail.runtime import backends, tf_runtime
from seedtrail.runtime.batch_records import BatchLosses, variable_fingerprints
from seedtrail.runtime.checkpoint import load_checkpoint, save_checkpoint
from seedtrail.runtime.keras_io import load_model, save_model, weights_fingerprint
from seedtrail.runtime.shards import sharded
from settings.model import AugmentSettings, TrainingSettings
from settings.seeds import epoch_rng
from tasks.augment import augment_epoch, batch_augmenter, build_augmenter, epoch_words

LOSS = "sparse_categorical_crossentropy"


def _one_epoch_callback():
    """Stops fit() after one epoch, so Keras' progress still reads "Epoch e/E"."""
    import keras

    class OneEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    return OneEpoch()


def epoch_line(epoch: int, epochs: int, logs: dict[str, list[float]]) -> str:
    """`train: epoch 2/6 · loss 0.5123 · accuracy 0.8000 · val_loss …`: the epoch just finished."""
    values = " · ".join(f"{name} {values[epoch]:.4f}" for name, values in logs.items())
    return f"train: epoch {epoch + 1}/{epochs} · {values}"


def make_optimizer(s: TrainingSettings):
    import keras

    if s.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=s.learning_rate, momentum=0.9)
    return keras.optimizers.Adam(learning_rate=s.learning_rate)


class _Feed:
    """What fit() gets per epoch: whole augmented arrays, or a stream of batches."""

    def __init__(self, ctx, s, augment_settings, augment, data, idx, feed) -> None:
        self.s, self.augment_settings, self.augment, self.idx = s, augment_settings, augment, idx
        self.indexed = records.is_indexed(data)
        self.workers = (feed or {}).get("workers")
        if self.indexed:
            self.source = records.source(data, ctx.store, feed)
            self.val = batches(self.source, idx["val"], s.batch_size, workers=self.workers)
        else:
            arrays = load_arrays(Path(data.outputs["arrays"]), data.fingerprint)
            self.x, self.y = arrays["x"], arrays["y"]
            self.val = (self.x[idx["val"]], self.y[idx["val"]])
        self.augmenter = None if augment.skipped else build_augmenter(augment_settings)

    def epoch(self, order, epoch: int) -> dict:
        """fit()'s data arguments for one epoch in this order."""
        if self.indexed:
            make = None if self.augmenter is None else self._make_augmenter
            words = (
                None if make is None else epoch_words(self.augment.seed, epoch, len(self.source))
            )
            train = batches(
                self.source, order, self.s.batch_size, workers=self.workers,
                make_augmenter=make, words=words,
            )  # fmt: skip
            return {"x": train}
        x_epoch = (
            self.x[order]
            if self.augmenter is None
            else augment_epoch(self.augmenter, self.x, order, self.augment.seed, epoch)
        )
        return {"x": x_epoch, "y": self.y[order], "batch_size": self.s.batch_size}

    def first_val_batch(self) -> tuple[object, object]:
        """A batch of the right shapes, read apart from any epoch's iterator."""
        if self.indexed:
            return self.val[0]
        x, y = self.val
        return x[: self.s.batch_size], y[: self.s.batch_size]

    def _make_augmenter(self):
        return batch_augmenter(self.augment_settings)


# The key names the checkpoints: a resumed run continues only its own training.
# `feed` (data.workers, data.cache) never changes the bytes: not in the key.
@stage(cache_exclude=("feed",))
def run_train(
    ctx: StageContext,
    s: TrainingSettings,
    seed: int,
    augment_settings: AugmentSettings,
    augment: StageResult,
    data: StageResult,
    split: StageResult,
    model_stage: StageResult,
    cache_key: str = "",
    feed: dict | None = None,
) -> StageOutput:
    """Train from the initial model, or continue from this run's last checkpoint for the key."""
    tf_runtime.configured_tf()
    import keras

    jit = backends.jit_compile(keras.config.backend())  # XLA: off for TF, JAX's compiler

    keras.utils.set_random_seed(seed)
    idx = load_arrays(Path(split.outputs["indices"]), split.fingerprint)
    fed = _Feed(ctx, s, augment_settings, augment, data, idx, feed)
    ckpt_dir = ctx.run_dir / "checkpoints"
    ckpt, notice = load_checkpoint(ckpt_dir, cache_key) if cache_key else (None, "")
    if notice:  # a checkpoint that is not the one written is never used: say so
        get_run_logger().warning(notice)
    if ckpt is None:
        model, optimizer, start = (
            load_model(Path(model_stage.outputs["initial_model"])),
            None,
            0,
        )
        history: dict[str, list[float]] = {}
        epoch_fingerprints: list[str] = []
        batch_losses: list[list[float]] = []
        variable_fps: list[dict[str, str]] = []
    else:
        model, optimizer, start = ckpt.model, ckpt.model.optimizer, ckpt.epochs_done
        history, epoch_fingerprints = ckpt.state["history"], ckpt.state["epoch_fingerprints"]
        # The records continue across the resume point, as the epochs do.
        batch_losses = ckpt.state.get("batch_losses", [])
        variable_fps = ckpt.state.get("variable_fingerprints", [])
        get_run_logger().info("train: resuming after epoch %d from its checkpoint", start)
    model.compile(
        optimizer=optimizer or make_optimizer(s),  # a checkpoint's optimizer keeps its state
        loss=LOSS,
        metrics=["accuracy"],
        jit_compile=jit,  # TensorFlow: XLA is off under op determinism anyway; say so
    )
    runner = model  # K = 1: Keras' own step, today's bytes
    if s.shards > 1:
        # K fixed shards per batch, run at once on the inter-op threads; the model, compiled
        # with the same optimizer, is what checkpoints and the final file save.
        runner = sharded(model, s.shards)
        runner.compile(
            optimizer=model.optimizer, loss=LOSS, metrics=["accuracy"], jit_compile=False
        )
    recorder = BatchLosses()
    recorder.install(runner)  # after compile: each batch's own loss, exactly
    # A terminal keeps Keras' progress bar; elsewhere the epoch's log line below says it all.
    verbose = 1 if sys.stdout.isatty() else 0
    one_epoch = _one_epoch_callback()
    backends.build_before_fit(runner, *fed.first_val_batch())
    for epoch in range(start, s.epochs):
        order = epoch_rng(seed, epoch).permutation(idx["train"])
        data_args = fed.epoch(order, epoch)
        try:
            h = runner.fit(
                **data_args,
                epochs=s.epochs,
                initial_epoch=epoch,
                callbacks=[one_epoch, recorder.callback()],
                shuffle=False,
                validation_data=fed.val,
                verbose=verbose,
            )
        except Exception:
            reraise_input_error(data_args["x"], fed.val)  # one line naming the file
            raise
        for name, values in h.history.items():
            history.setdefault(name, []).append(float(values[-1]))
        log_to_run(epoch_line(epoch, s.epochs, history))  # the flow run's logs: the UI
        epoch_fingerprints.append(weights_fingerprint(model))
        batch_losses.append(recorder.take())
        variable_fps.append(variable_fingerprints(model))
        if cache_key:
            save_checkpoint(
                ckpt_dir,
                model,
                epoch + 1,
                {
                    "key": cache_key,
                    "history": history,
                    "epoch_fingerprints": epoch_fingerprints,
                    "batch_losses": batch_losses,
                    "variable_fingerprints": variable_fps,
                },
            )

    model_path = ctx.run_dir / "model.keras"
    save_model(model, model_path)
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # the final model supersedes them
    atomic.write_json(ctx.run_dir / "history.json", history)
    return StageOutput(
        epoch_fingerprints[-1],
        outputs={
            "model": str(model_path),
            "history": str(ctx.run_dir / "history.json"),
        },
        info={
            "fingerprint_of": "final weights and seed-generator states",
            "epoch_fingerprints": epoch_fingerprints,
            # where training first diverges (seedtrail/runtime/batch_records.py): each
            # batch's own loss per epoch, and each weight variable's fingerprint per epoch
            # None where the backend gives none (JAX, PyTorch: batch_records.py)
            "batch_losses": batch_losses if recorder.recording else None,
            "variable_fingerprints": variable_fps,
            "resumed_after_epoch": start,
            "final": {k: v[-1] for k, v in history.items()},
        },
    )


# --- wiring: how the pipeline feeds this stage (seedtrail/core/wiring.py); not in its code version
def _arguments(settings) -> dict:
    return {"augment_settings": settings.augment, "feed": settings.data.feed()}


def _on_cache_hit(run_dir: Path) -> None:
    # A resumed run whose training came from the cache never ran run_train's clean-up:
    # its checkpoints from before the interrupt would stay behind.
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)


def _curves(settings, result: StageResult, run_dir: Path) -> dict[str, str]:
    """The training curves, titled with the root seed the run card names (and this stage's
    own): drawn for this run, as the result may come from another run's cache."""
    import json

    from seedtrail.core.plots import training_curves

    history = json.loads(Path(result.outputs["history"]).read_text())
    path = run_dir / "training_curves.png"
    seeds = f"root seed {settings.seed} (train seed {result.seed})"
    training_curves(history, path, f"{seeds} · {settings.training.epochs} epochs")
    return {"training_curves": str(path)}


def _check(p) -> None:
    """Shards are TensorFlow subgraphs (seedtrail/runtime/shards.py): other backends refuse."""
    d = p.settings.determinism
    backends.check(d.backend, d.intra_op_threads, p.settings.training.shards)


run_train.wire(arguments=_arguments, on_cache_hit=_on_cache_hit, artifacts=_curves, check=_check)
