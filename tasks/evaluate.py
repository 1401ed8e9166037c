"""Evaluate stage: loss, accuracy and per-class metrics on the held-out test split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from seedtrail.core import atomic
from seedtrail.core.fingerprint import fingerprint_arrays
from seedtrail.core.stage import stage
from seedtrail.core.stage_cache import StageContext
from seedtrail.core.stage_result import StageOutput, StageResult
from seedtrail.core.store import load_arrays
from seedtrail.inputs import records
from seedtrail.inputs.stream import batches, reraise_input_error
from seedtrail.runtime import tf_runtime
from seedtrail.runtime.keras_io import load_model
from seedtrail.runtime.shards import sharded


def classification_metrics(
    probs: np.ndarray, y: np.ndarray, class_names: list[str]
) -> dict[str, Any]:
    """Metrics from predicted probabilities; computed in float64 numpy, so they are exact functions of the bytes."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    k = len(class_names)
    p = np.clip(probs.astype(np.float64)[np.arange(len(y)), y], 1e-12, 1.0)
    pred = probs.argmax(axis=1)
    prec, rec, f1, support = precision_recall_fscore_support(
        y, pred, labels=np.arange(k), zero_division=0
    )
    return {
        "test_loss": float(-np.log(p).mean()),
        "test_accuracy": float((pred == y).mean()),
        "test_samples": len(y),
        "per_class": {
            name: {
                "precision": float(prec[i]),
                "recall": float(rec[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": confusion_matrix(y, pred, labels=np.arange(k)).tolist(),
    }


def _predict(model, ctx: StageContext, data: StageResult, test: np.ndarray, feed: dict | None):
    """(probabilities, labels) of the test split: from arrays, or streamed from an index."""
    if not records.is_indexed(data):
        arrays = load_arrays(Path(data.outputs["arrays"]), data.fingerprint)
        return np.asarray(model.predict(arrays["x"][test], batch_size=256, verbose=0)), arrays["y"][
            test
        ]
    source = records.source(data, ctx.store, feed)
    ds = batches(source, test, 256, workers=(feed or {}).get("workers"))
    try:
        probs = np.asarray(model.predict(ds, verbose=0))
    except Exception:
        reraise_input_error(ds)
        raise
    return probs, source.labels[test]


# `feed` (data.workers, data.cache) never changes the bytes: not in the key.
@stage(cache_exclude=("feed",))
def run_evaluate(
    ctx: StageContext,
    seed: int,
    data: StageResult,
    split: StageResult,
    train: StageResult,
    feed: dict | None = None,
    shards: int = 1,
) -> StageOutput:
    """Test-set probabilities, predicted in `shards` fixed shards per batch as in training."""
    tf_runtime.configured_tf()
    import keras

    keras.utils.set_random_seed(seed)
    test = load_arrays(Path(split.outputs["indices"]), split.fingerprint)["test"]
    model = load_model(Path(train.outputs["model"]))
    if shards > 1:
        model = sharded(model, shards)
    probs, y_test = _predict(model, ctx, data, test, feed)
    # class_names come from data's record, not its bytes: the key covers both (cache_key.py)
    metrics = classification_metrics(probs, y_test, data.info["class_names"])
    path = ctx.run_dir / "metrics.json"
    atomic.write_json(path, metrics)
    return StageOutput(
        fingerprint_arrays({"probabilities": probs}),
        outputs={"metrics": str(path)},
        info={"fingerprint_of": "test-set probabilities", "metrics": metrics},
    )


# --- wiring: how the pipeline feeds this stage (seedtrail/core/wiring.py); not in its code version
def _arguments(settings) -> dict:
    return {"feed": settings.data.feed(), "shards": settings.training.shards}


run_evaluate.wire(arguments=_arguments)
