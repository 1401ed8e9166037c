"""Evaluate stage: loss, accuracy and per-class metrics on the held-out test split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from prefect import task

from seedtrail import atomic, tf_runtime
from seedtrail.cache_key import cache_key
from seedtrail.fingerprint import fingerprint_arrays
from seedtrail.keras_io import load_model
from seedtrail.stage import StageResult, stopwatch
from seedtrail.stage_cache import StageContext, cached
from seedtrail.store import load_arrays

VERSION = "1"
DETERMINISTIC = True


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


def run_evaluate(
    seed: int, data: StageResult, split: StageResult, train: StageResult, run_dir: Path
) -> StageResult:
    with stopwatch() as elapsed:
        tf_runtime.ensure()
        import keras

        keras.utils.set_random_seed(seed)
        arrays = load_arrays(Path(data.outputs["arrays"]), data.fingerprint)
        test = load_arrays(Path(split.outputs["indices"]), split.fingerprint)["test"]
        model = load_model(Path(train.outputs["model"]))
        probs = np.asarray(model.predict(arrays["x"][test], batch_size=256, verbose=0))
        metrics = classification_metrics(probs, arrays["y"][test], data.info["class_names"])
        fp = fingerprint_arrays({"probabilities": probs})
        path = run_dir / "metrics.json"
        atomic.write_json(path, metrics)
    return StageResult(
        "evaluate",
        seed,
        fp,
        elapsed(),
        outputs={"metrics": str(path)},
        info={"fingerprint_of": "test-set probabilities", "metrics": metrics},
    )


@task(name="evaluate")
def evaluate_task(
    ctx: StageContext, seed: int, data: StageResult, split: StageResult, train: StageResult
) -> StageResult:
    inputs = {
        "data": data.fingerprint,
        "split": split.fingerprint,
        "train": train.fingerprint,
        "env": ctx.env_fingerprint,
    }
    key = cache_key("evaluate", VERSION, None, seed, inputs)
    return cached(ctx, "evaluate", key, lambda: run_evaluate(seed, data, split, train, ctx.run_dir))
