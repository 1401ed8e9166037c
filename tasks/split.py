"""Split stage: stratified train/validation/test indices, scikit-learn random_state from the split seed."""

from __future__ import annotations

import numpy as np

from seedtrail.core.errors import InputError
from seedtrail.core.stage import stage
from seedtrail.core.stage_cache import StageContext
from seedtrail.core.stage_result import StageOutput, StageResult
from seedtrail.core.store import put_arrays
from seedtrail.inputs import records
from settings.model import SplitSettings
from settings.seeds import derive_seed


def split_sizes(y: np.ndarray, s: SplitSettings) -> tuple[int, int, int]:
    """(n_train, n_val, n_test); raises InputError when there are too few samples per class.

    Cheap (no scikit-learn import): the CLI checks it before anything starts.
    """
    n = len(y)
    classes, counts = np.unique(y, return_counts=True)
    k = len(classes)
    n_test = int(np.ceil(s.test_size * n))
    n_val = int(np.ceil(s.val_size * n))
    n_train = n - n_test - n_val
    if min(n_test, n_val, n_train) < k or counts.min() < 3:
        raise InputError(
            f"split: {n} samples in {k} classes (smallest class {counts.min()}) are too few for "
            f"test_size={s.test_size}, val_size={s.val_size}: every split needs at least one "
            f"sample per class ({n_train} train / {n_val} val / {n_test} test)"
        )
    return n_train, n_val, n_test


def split_indices(
    y: np.ndarray, s: SplitSettings, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) dataset indices, each stratified by label.

    Raises InputError when there are too few samples per class to stratify.
    """
    from sklearn.model_selection import train_test_split

    _, n_val, n_test = split_sizes(y, s)
    idx = np.arange(len(y))
    rest, test = train_test_split(
        idx, test_size=n_test, stratify=y, random_state=derive_seed(seed, 0)
    )
    train, val = train_test_split(
        rest, test_size=n_val, stratify=y[rest], random_state=derive_seed(seed, 1)
    )
    return train.astype(np.int64), val.astype(np.int64), test.astype(np.int64)


# Retries: reading the data arrays can fail transiently; bad input never retries.
@stage(retries=2, env="stack")
def run_split(ctx: StageContext, s: SplitSettings, seed: int, data: StageResult) -> StageOutput:
    y = records.labels(data)
    train, val, test = split_indices(y, s, seed)
    fp, path = put_arrays(ctx.store, {"train": train, "val": val, "test": test})
    return StageOutput(
        fp,
        outputs={"indices": str(path)},
        info={"sizes": {"train": len(train), "val": len(val), "test": len(test)}},
    )


# --- wiring: how the pipeline feeds this stage (seedtrail/core/wiring.py); not in its code version
def _check(p) -> None:
    split_sizes(p.facts["labels"], p.settings.split)


run_split.wire(check=_check)
