"""A toy stage, as a contributor would add one (docs/contributing.md, "Adding a stage").

It counts the samples of each class in each split. With the line
`TOY_STAGE` in the pipeline table, after `split`, the pipeline runs it: its own
seed, key, cache and manifest entry, with nothing else to wire.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seedtrail.core.fingerprint import fingerprint_json
from seedtrail.core.pipeline_table import StageSpec
from seedtrail.core.stage import stage
from seedtrail.core.stage_cache import StageContext
from seedtrail.core.stage_result import StageOutput, StageResult
from seedtrail.core.store import load_arrays
from seedtrail.inputs import records

#: Its line in the pipeline table (the test inserts it after split).
TOY_STAGE = StageSpec(
    "class_counts",
    "tests.toy_stage",
    "Pin the class_counts seed.",
    reads=("data", "split"),
    seed_changes_bytes=False,  # the counts never depend on its seed
)


@stage(env="none")
def run_class_counts(
    ctx: StageContext, seed: int, data: StageResult, split: StageResult
) -> StageOutput:
    y = records.labels(data)
    idx = load_arrays(Path(split.outputs["indices"]), split.fingerprint)
    k = int(data.info["n_classes"])
    counts = {part: np.bincount(y[idx[part]], minlength=k).tolist() for part in sorted(idx)}
    return StageOutput(fingerprint_json(counts), info={"counts": counts})


# --- wiring: how the pipeline feeds this stage (seedtrail/core/wiring.py); not in its code version
CHECKED: list[int] = []  # the classes each preflight saw (the test reads it)


def _check(p) -> None:
    """Before Prefect starts: what the data stage's check found (its labels) is at hand."""
    CHECKED.append(len(np.unique(p.facts["labels"])))


run_class_counts.wire(check=_check)
