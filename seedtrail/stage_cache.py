"""The stage cache: small JSON entries pointing at content-addressed files, verified on every hit.

An entry `<store>/cache/<stage>/<key>.json` records the stage's result and the
sha256 of each output file. Files written into a run directory (model, PNGs,
metrics) are also copied to `<store>/files/`, so a hit can put them into a new
run directory. A hit whose files are missing or changed is a miss: the stage is
recomputed, never trusted. This cache is ours, not Prefect's result
persistence, so a result Prefect cannot serialize cannot make it lie.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from seedtrail import atomic
from seedtrail.fingerprint import sha256_file
from seedtrail.stage_result import StageResult


@dataclass(frozen=True)
class StageContext:
    """Where a stage writes, whether it may reuse, and the environment it runs in."""

    run_dir: Path
    store: Path
    use_cache: bool = True
    env_fingerprint: str = ""  # everything that can change TF results
    stack_fingerprint: str = ""  # package versions only (numpy, sklearn, albumentations...)

    @property
    def cache_dir(self) -> Path:
        return self.store / "cache"

    @property
    def files_dir(self) -> Path:
        return self.store / "files"


def _entry_path(ctx: StageContext, stage: str, key: str) -> Path:
    return ctx.cache_dir / stage / f"{key}.json"


def _copy_atomic(src: Path, dst: Path) -> None:
    with atomic.atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def save_entry(ctx: StageContext, key: str, result: StageResult) -> None:
    files = {}
    for name, p in result.outputs.items():
        path = Path(p)
        digest = sha256_file(path)
        try:
            run_file = str(path.resolve().relative_to(ctx.run_dir.resolve()))
        except ValueError:
            run_file = None
        if run_file is None:
            stored = path
        else:  # keep a content-addressed copy the next run can materialize
            stored = ctx.files_dir / f"{digest}{path.suffix}"
            if not stored.exists() or sha256_file(stored) != digest:
                _copy_atomic(path, stored)
        files[name] = {"sha256": digest, "stored": str(stored), "run_file": run_file}
    atomic.write_json(
        _entry_path(ctx, result.stage, key),
        {"stage": result.stage, "key": key, "result": result.to_manifest(), "files": files},
    )


def load_entry(ctx: StageContext, stage: str, key: str) -> tuple[StageResult | None, str]:
    """(result, "") on a verified hit; (None, reason) otherwise. Materializes run files."""
    path = _entry_path(ctx, stage, key)
    if not path.exists():
        return None, "no entry"
    try:
        entry = json.loads(path.read_text())
        result = StageResult(**entry["result"])
        files = entry["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return None, f"unreadable entry ({err})"
    outputs = {}
    for name, f in files.items():
        stored = Path(f["stored"])
        if not stored.is_file():
            return None, f"{name}: file missing ({stored})"
        if sha256_file(stored) != f["sha256"]:
            return None, f"{name}: bytes changed ({stored})"
        if f["run_file"] is None:
            outputs[name] = str(stored)
        else:
            target = ctx.run_dir / f["run_file"]
            _copy_atomic(stored, target)
            outputs[name] = str(target)
    return replace(result, outputs=outputs), ""


def _warn(message: str) -> None:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_logger, get_run_logger

    try:
        get_run_logger().warning(message)
    except MissingContextError:
        get_logger("seedtrail").warning(message)


def lookup(
    ctx: StageContext, stage: str, key: str, log: Callable[[str], None] = _warn
) -> tuple[StageResult | None, dict[str, Any]]:
    """(verified hit or None, the cache decision as data) for one stage's key."""
    if not ctx.use_cache:
        return None, {"status": "off", "key": key, "reason": "cache disabled (--no-cache)"}
    hit, why = load_entry(ctx, stage, key)
    if hit is None:
        if why != "no entry":  # say why a stage ran again instead of reusing
            log(f"{stage}: cache entry rejected, recomputing: {why}")
        return None, {"status": "miss", "key": key, "reason": why}
    # load_entry checked the sha256 of every file of the entry before returning it
    return replace(hit, cached=True), {"status": "hit", "key": key, "verified": True}
