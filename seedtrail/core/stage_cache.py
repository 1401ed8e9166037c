"""The stage cache: small JSON entries pointing at content-addressed files, verified on every hit.

An entry `<store>/cache/<stage>/<key>.json` records the stage's result and the
sha256 of each output file. Files written into a run directory (model, PNGs,
metrics) are also copied to `<store>/files/`, so a hit can put them into a new
run directory. A hit whose files are missing or changed, or whose recorded result
no longer matches the seal written with it, is a miss: the stage is recomputed,
never trusted. This cache is ours, not Prefect's result
persistence, so a result Prefect cannot serialize cannot make it lie.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from seedtrail.core import atomic
from seedtrail.core.fingerprint import fingerprint_json, sha256_file
from seedtrail.core.stage_result import StageResult


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


def _copy_atomic(src: Path, dst: Path, *, owned: bool = False) -> None:
    with atomic.atomic_path(dst, owned=owned) as tmp:
        shutil.copyfile(src, tmp)


def entry_seal(entry: dict[str, Any]) -> str:
    """sha256 of everything an entry claims (stage, key, result, file hashes), seal excluded.

    A hit must prove its recorded result belongs to the stored bytes: the files are
    checked against their sha256, and the seal ties those hashes to the result, so an
    edited fingerprint (or any other edit) no longer matches and the entry is a miss.
    """
    return fingerprint_json({k: entry.get(k) for k in ("stage", "key", "result", "files")})


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
            if not stored.is_file() or sha256_file(stored) != digest:
                _copy_atomic(path, stored, owned=True)  # a directory there: corrupt, replaced
        files[name] = {"sha256": digest, "stored": str(stored), "run_file": run_file}
    entry = {"stage": result.stage, "key": key, "result": result.to_manifest(), "files": files}
    entry = json.loads(json.dumps(entry, default=str))  # seal what a reader will parse
    atomic.write_json(
        _entry_path(ctx, result.stage, key), {**entry, "seal": entry_seal(entry)}, owned=True
    )


_HEX64 = re.compile(r"[0-9a-f]{64}")
_RESULT_TYPES: dict[str, type | tuple[type, ...]] = {
    "stage": str,
    "seed": int,
    "fingerprint": str,
    "duration_s": (int, float),
    "cached": bool,
    "skipped": bool,
    "outputs": dict,
    "info": dict,
    "deterministic": bool,
    "cache": dict,
}


def entry_problem(entry: Any, stage: str, key: str) -> str | None:
    """Why a parsed entry cannot be trusted (its shape, its seal), or None if it can."""
    if not isinstance(entry, dict):
        return "not a JSON object"
    if entry.get("stage") != stage or entry.get("key") != key:
        return "made for another stage or key"
    result, files = entry.get("result"), entry.get("files")
    if not isinstance(result, dict) or set(result) != set(_RESULT_TYPES):
        return "result is not a stage result"
    for name, kind in _RESULT_TYPES.items():
        if not isinstance(result[name], kind) or (kind is int and isinstance(result[name], bool)):
            return f"result.{name} has the wrong type"
    if result["stage"] != stage:
        return "result is of another stage"
    if not result["fingerprint"]:  # what it is, the seal proves (stages choose its form)
        return "result.fingerprint is empty"
    if not isinstance(files, dict) or set(files) != set(result["outputs"]):
        return "files do not match the result's outputs"
    for name, f in files.items():
        if not (
            isinstance(f, dict)
            and isinstance(f.get("sha256"), str)
            and _HEX64.fullmatch(f["sha256"])
            and isinstance(f.get("stored"), str)
            and f["stored"]
            and (f.get("run_file") is None or _inside(f.get("run_file")))
        ):
            return f"{name}: malformed file record"
    if entry.get("seal") != entry_seal(entry):
        return "result does not match its seal (edited or corrupt entry)"
    return None


def _inside(run_file: Any) -> bool:
    """A relative path that stays inside the run directory."""
    if not isinstance(run_file, str) or not run_file:
        return False
    p = PurePosixPath(run_file)
    return not p.is_absolute() and ".." not in p.parts


def load_entry(ctx: StageContext, stage: str, key: str) -> tuple[StageResult | None, str]:
    """(result, "") on a verified hit; (None, reason) otherwise. Materializes run files.

    Never raises for a bad entry: anything malformed, edited or unreadable is a miss.
    """
    path = _entry_path(ctx, stage, key)
    if not path.exists():
        return None, "no entry"
    if path.is_dir():
        return None, "a directory, not an entry file"
    try:
        entry = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return None, f"unreadable entry ({err})"
    problem = entry_problem(entry, stage, key)
    if problem is not None:
        return None, problem
    outputs = {}
    try:
        for name, f in entry["files"].items():
            stored = Path(f["stored"])
            if stored.is_dir():
                return None, f"{name}: a directory, not a file ({stored})"
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
    except OSError as err:
        return None, f"cannot read its files ({err})"
    return replace(StageResult(**entry["result"]), outputs=outputs), ""


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
