"""The pipeline table: the pipeline's stages, in order, the one list that names them.

Settings (the seed overrides form), the flow, sweeps and comparisons all read
this table. It holds no stage code: settings must load without TensorFlow or
Prefect, so the code is bound by `@stage` (seedtrail/core/stage.py) on a run
function in the module named here, and found through `declared()` once that module
is imported (seedtrail/run/pipeline.py imports each). The table never imports a
stage itself: the framework sits below the stages built on it (tests/test_layout.py).

Adding a stage takes its module (a `@stage` run function and its wiring) and one line
here (docs/contributing.md, "Adding a stage"). Generic code reads roles, not names:
`ENVIRONMENT_STAGE` (the context of the others), `EPOCH_STAGE` (what trains).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seedtrail.core.stage import DeclaredStage


@dataclass(frozen=True)
class StageSpec:
    """One line of the table: a stage's name, where it lives and how generic code sees it.

    The names and flags live here (read without importing any stage); what needs code (the
    arguments it takes from the settings, the external content in its key, its preflight
    check, clean-up and extra artifacts) is the wiring at the end of its module
    (seedtrail/core/wiring.py).
    """

    name: str
    module: str  # where its @stage run function lives
    seed_description: str  # the "pin this seed" field of SeedOverrides (a Prefect UI form)
    # The RunSettings section its run function gets as `s` (None: it takes none).
    settings: str | None = None
    # Earlier stages whose results it reads, passed by name (the parameter NAME, or
    # NAME_stage where NAME is taken, e.g. by a module the stage imports).
    reads: tuple[str, ...] = ()
    # Keys of its info that become top-level sections of the manifest.
    manifest: tuple[str, ...] = ()
    # Its own seed changes the bytes of the run, so a sweep may vary it alone.
    seed_changes_bytes: bool = True
    # Its fingerprint describes the software stack, not data: compare reports it as a cause,
    # and its result gives the later stages' context (the environment fingerprints).
    describes_environment: bool = False
    # It trains: its info records the epochs (history, per-epoch fingerprints, batch losses)
    # that compare, reports and the leaderboard read; its fingerprint is the final weights.
    records_epochs: bool = False


PIPELINE: tuple[StageSpec, ...] = (
    StageSpec(
        "environment",
        "tasks.environment",
        "Pin the environment seed.",
        settings="determinism",
        manifest=("environment",),
        seed_changes_bytes=False,
        describes_environment=True,
    ),
    StageSpec("data", "tasks.data", "Pin the data seed.", settings="data"),
    StageSpec("augment", "tasks.augment", "Pin the augment seed.", "augment", reads=("data",)),
    StageSpec("split", "tasks.split", "Pin the split seed.", "split", reads=("data",)),
    StageSpec(
        "model", "tasks.model", "Pin the model (weight init) seed.", "model", ("data", "split")
    ),
    StageSpec(
        "train",
        "tasks.train",
        "Pin the train (batch order) seed.",
        settings="training",
        reads=("augment", "data", "split", "model"),
        records_epochs=True,
    ),
    # Predictions do not depend on its seed (it only reseeds the process defensively).
    StageSpec(
        "evaluate",
        "tasks.evaluate",
        "Pin the evaluate seed.",
        reads=("data", "split", "train"),
        manifest=("metrics",),
        seed_changes_bytes=False,
    ),
)


def check_table(pipeline: tuple[StageSpec, ...]) -> None:
    """A table generic code can rely on: unique names, reads of earlier stages only, one
    stage describing the environment (first: the others' context comes from it), one
    recording epochs."""
    names = [s.name for s in pipeline]
    if len(set(names)) != len(names):
        raise ValueError(f"pipeline table: a stage name appears twice: {names}")
    for i, s in enumerate(pipeline):
        later = [r for r in s.reads if r not in names[:i]]
        if later:
            raise ValueError(f"pipeline table: {s.name} reads {later}, which do not run before it")
    for flag in ("describes_environment", "records_epochs"):
        if sum(getattr(s, flag) for s in pipeline) != 1:
            raise ValueError(f"pipeline table: exactly one stage must be {flag}")
    if not pipeline[0].describes_environment:
        raise ValueError("pipeline table: the stage that describes the environment runs first")


check_table(PIPELINE)

STAGES: tuple[str, ...] = tuple(s.name for s in PIPELINE)
#: Stages whose bytes are data (everything but the environment description).
DATA_STAGES: tuple[str, ...] = tuple(s.name for s in PIPELINE if not s.describes_environment)
#: Stages a sweep may vary alone (`--vary STAGE`).
VARY_STAGES: tuple[str, ...] = tuple(s.name for s in PIPELINE if s.seed_changes_bytes)
#: The stage whose fingerprint describes the environment ("environment").
ENVIRONMENT_STAGE: str = next(s.name for s in PIPELINE if s.describes_environment)
#: The stage that trains and records its epochs ("train").
EPOCH_STAGE: str = next(s.name for s in PIPELINE if s.records_epochs)

_declared: dict[str, DeclaredStage] = {}


def spec(name: str) -> StageSpec:
    return next(s for s in PIPELINE if s.name == name)


def pipeline() -> tuple[StageSpec, ...]:
    """The table as it is now (read at call time, so that a test may add a stage to it)."""
    return PIPELINE


def register(stage: DeclaredStage) -> None:
    """Called by @stage. Two different functions may not claim one name."""
    old = _declared.get(stage.name)
    if old is not None and old.fn.__qualname__ != stage.fn.__qualname__:
        raise ValueError(f"stage {stage.name!r} is declared twice ({old.fn} and {stage.fn})")
    _declared[stage.name] = stage


def declared(name: str) -> DeclaredStage:
    """The declared stage of a pipeline name; its module must have been imported."""
    try:
        return _declared[name]
    except KeyError:
        raise LookupError(
            f"stage {name!r} is not declared yet: import {spec(name).module} first"
        ) from None
