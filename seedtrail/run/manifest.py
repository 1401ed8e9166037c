"""The run manifest as a typed, versioned model: read and validated here, and only here.

`manifest.json` is written stage by stage by `seedtrail.run.rundir.RunDirectory`;
every reader (train --resume, verify, compare, sweep resume, reports) goes
through `read_manifest`, which turns a missing, corrupt or mistyped file into
one `NotARun` line instead of a traceback deep inside a consumer.

Versions: 1 (up to b1f91f1), 2 (stage records add `deterministic` and the
cache decision `cache`) and 3 (sealed: `manifest_sha256`, seedtrail/run/integrity.py).
Version 1 files read with the defaults of what they lack. A manifest read from disk
must match its own content (seal, settings fingerprint, seeds, metrics): an edited
one is refused in one line, so no reader trusts or compares it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from seedtrail.core.errors import InputError
from seedtrail.core.pipeline_table import ENVIRONMENT_STAGE, EPOCH_STAGE
from seedtrail.run import integrity
from seedtrail.run.manifest_migration import recorded_settings
from settings.cli import format_validation_error
from settings.model import RunSettings

MANIFEST = "manifest.json"
MANIFEST_VERSION = 3
COMPLETE = "complete"
#: Every status a writer sets; anything else (e.g. `"status": 5`) is a corrupt manifest.
Status = Literal["running", "complete", "partial", "interrupted", "failed"]

#: A JSON object whose values may be anything (an environment, a stage's info).
JsonObject = dict[str, Any]


class NotARun(InputError):
    """The path is not a seedtrail run directory, or its manifest is unreadable (exit 2)."""


class _Record(BaseModel):
    # Readers ignore keys they do not know: a newer writer may add some.
    model_config = ConfigDict(extra="ignore", frozen=True)


class StageRecord(_Record):
    stage: str | None = None
    seed: int | None = None
    fingerprint: str
    duration_s: float = 0.0
    cached: bool = False
    skipped: bool = False
    outputs: dict[str, str] = Field(default_factory=dict)
    info: JsonObject = Field(default_factory=dict)
    deterministic: bool = True  # v1: every stage was
    cache: JsonObject = Field(default_factory=dict)  # v1: not recorded


class Seeds(_Record):
    root: int
    rule: str = ""
    stage_keys: dict[str, int] = Field(default_factory=dict)
    stages: dict[str, int] = Field(default_factory=dict)
    pinned: list[str] = Field(default_factory=list)


class ClassMetrics(_Record):
    precision: float
    recall: float
    f1: float
    support: int


class Metrics(BaseModel):
    """The evaluate stage's metrics; other numeric entries are kept as they are."""

    model_config = ConfigDict(extra="allow", frozen=True)

    test_loss: float | None = None
    test_accuracy: float | None = None
    test_samples: int | None = None
    per_class: dict[str, ClassMetrics] = Field(default_factory=dict)
    confusion_matrix: list[list[int]] = Field(default_factory=list)

    def scalars(self) -> dict[str, float]:
        """Every numeric metric (no bools), in file order."""
        return {
            k: v
            for k, v in self.model_dump(exclude_none=True).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }


class Manifest(_Record):
    manifest_version: Literal[1, 2, 3] = 1
    run_id: str
    status: Status
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    settings: RunSettings
    settings_fingerprint: str | None = None
    seeds: Seeds
    stage_versions: dict[str, str] = Field(default_factory=dict)
    stages: dict[str, StageRecord]
    metrics: Metrics = Field(default_factory=Metrics)
    environment: JsonObject | None = None
    artifacts: dict[str, str] = Field(default_factory=dict)
    resumed: list[JsonObject] = Field(default_factory=list)
    # The user's code and files by content (seedtrail/inputs/user_inputs.py); absent before them.
    user_inputs: dict[str, JsonObject] = Field(default_factory=dict)
    # Where the manifest was read from (not in the file).
    run_dir: str = ""

    @model_validator(mode="after")
    def _train_info_shapes(self) -> Manifest:
        """What readers of the training stage's info expect (compare, reports): wrong types
        are corrupt."""
        info = self.info(EPOCH_STAGE)
        if not isinstance(info.get("final", {}), dict):
            raise ValueError(f"stages.{EPOCH_STAGE}.info.final is not an object")
        if not isinstance(info.get("epoch_fingerprints", []), list):
            raise ValueError(f"stages.{EPOCH_STAGE}.info.epoch_fingerprints is not a list")
        return self

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE

    def stage(self, name: str) -> StageRecord | None:
        return self.stages.get(name)

    def info(self, stage: str) -> JsonObject:
        """A stage's info, empty when the stage was not recorded."""
        record = self.stages.get(stage)
        return record.info if record is not None else {}

    def environment_facts(self) -> JsonObject:
        """The captured environment: top level once recorded, else the environment stage's."""
        if self.environment is not None:
            return self.environment
        env = self.info(ENVIRONMENT_STAGE).get("environment")
        return env if isinstance(env, dict) else {}

    def epoch_fingerprints(self) -> list[str]:
        efs = self.info(EPOCH_STAGE).get("epoch_fingerprints")
        return [str(e) for e in efs] if isinstance(efs, list) else []

    def batch_losses(self) -> list[list[float]] | None:
        """Each epoch's per-batch losses (train info); None for runs recorded before them."""
        records = self.info(EPOCH_STAGE).get("batch_losses")
        if not isinstance(records, list) or not all(isinstance(e, list) for e in records):
            return None
        return [[float(v) for v in epoch] for epoch in records]

    def variable_fingerprints(self) -> list[dict[str, str]] | None:
        """Per epoch, each weight variable's fingerprint by path, in model order (or None)."""
        records = self.info(EPOCH_STAGE).get("variable_fingerprints")
        if not isinstance(records, list) or not all(isinstance(e, dict) for e in records):
            return None
        return [{str(k): str(v) for k, v in epoch.items()} for epoch in records]

    def final_train_metrics(self) -> dict[str, float]:
        final = self.info(EPOCH_STAGE).get("final")
        if not isinstance(final, dict):
            return {}
        return {
            k: v for k, v in final.items() if isinstance(v, int | float) and not isinstance(v, bool)
        }

    def settings_json(self) -> JsonObject:
        return self.settings.model_dump(mode="json")


def _problem(err: ValidationError) -> str:
    """The first problem, naming where it is: e.g. `metrics.test_loss: Input should be ...`."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def parse_manifest(data: Any, where: str = "manifest", run_dir: str = "") -> Manifest:
    """Validate a manifest's JSON value; every problem is one NotARun line."""
    if not isinstance(data, dict):
        raise NotARun(f"{where}: not a seedtrail manifest (not a JSON object)")
    missing = [k for k in ("run_id", "settings", "seeds", "stages", "status") if k not in data]
    if missing:
        raise NotARun(f"{where}: not a seedtrail manifest (missing {', '.join(missing)})")
    try:  # first: settings a run cannot be redone with deserve one line per field
        settings = recorded_settings(data["settings"])  # older runs: what they actually used
    except ValidationError as err:
        prefix = f"{run_dir or where}: manifest settings: "
        raise NotARun(format_validation_error(err, prefix=prefix)) from None
    try:
        return Manifest.model_validate({**data, "settings": settings, "run_dir": run_dir})
    except ValidationError as err:
        raise NotARun(f"{where}: corrupt manifest ({_problem(err)})") from None


def manifest_file(run_dir: Path) -> Path:
    path = Path(run_dir)
    return path / MANIFEST if path.is_dir() else path


def read_json(run_dir: Path) -> dict[str, Any]:
    """The manifest's raw JSON object (a writer resuming a run appends to it)."""
    path = Path(run_dir)
    mf = manifest_file(path)
    if not path.exists():
        raise NotARun(f"{run_dir}: no such directory")
    if not mf.is_file():
        raise NotARun(f"{run_dir}: not a run directory (no {MANIFEST})")
    try:
        data = json.loads(mf.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise NotARun(f"{mf}: corrupt manifest ({err})") from None
    parse_manifest(data, str(mf), str(mf.parent))  # the same checks as every reader
    edited = integrity.problems(data)
    if edited:
        raise NotARun(
            f"{mf}: edited after the run wrote it ({edited[0]}); refusing to trust or "
            "compare it: restore the original file, or rerun"
        )
    return data


def read_manifest(run_dir: Path) -> Manifest:
    """The typed manifest of a run directory (or of a manifest.json path)."""
    mf = manifest_file(Path(run_dir))
    return parse_manifest(read_json(run_dir), str(mf), str(mf.parent))
