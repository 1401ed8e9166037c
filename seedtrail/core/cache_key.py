"""Cache keys: a stage's identity is a hash of everything that determines its bytes.

key = sha256(stage name, code version, every argument of its run function, the
environment fingerprint it depends on). Arguments are turned into key parts by
one rule per type, so a key cannot drift from the inputs:

- settings (pydantic models): all fields, plus the sha256 of every file a Path
  field points at (same path, new content: new key);
- an input stage's StageResult: its seed, fingerprint and info (what a later
  stage may read from it, e.g. the class names next to the data bytes);
- plain JSON values as they are. Any other type is an error, not a silent gap.

Only a stage's declared `cache_exclude` arguments are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from seedtrail.core.fingerprint import fingerprint_json, sha256_file
from seedtrail.core.stage_result import StageResult

#: Record keys that say how a result was obtained, not what it is.
_HOW_OBTAINED = frozenset({"cache_key", "resumed_after_epoch"})


def file_digests(model: BaseModel, prefix: str = "") -> dict[str, str]:
    """sha256 of each file that a Path field (at any depth) points at."""
    out: dict[str, str] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out.update(file_digests(value, f"{prefix}{name}."))
        elif isinstance(value, Path) and value.is_file():
            out[f"{prefix}{name}"] = sha256_file(value)
    return out


def key_part(value: Any) -> Any:
    """The JSON-able part of a cache key that stands for one argument."""
    if isinstance(value, StageResult):
        info = {k: v for k, v in value.info.items() if k not in _HOW_OBTAINED}
        return {
            "seed": value.seed,
            "fingerprint": value.fingerprint,
            "info": fingerprint_json(info),
        }
    if isinstance(value, BaseModel):
        return {"settings": value.model_dump(mode="json"), "files": file_digests(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [key_part(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): key_part(v) for k, v in value.items()}
    raise TypeError(
        f"cannot derive a cache key from {type(value).__name__}: "
        "pass settings, seeds, StageResults or JSON values, or declare it in cache_exclude"
    )


def key_payload(
    stage: str, version: str, arguments: Mapping[str, Any], environment: str
) -> dict[str, Any]:
    """The decodable key: what the hash is taken of."""
    return {
        "stage": stage,
        "version": version,
        "arguments": {name: key_part(v) for name, v in arguments.items()},
        "environment": environment,
    }


def cache_key(stage: str, version: str, arguments: Mapping[str, Any], environment: str) -> str:
    return fingerprint_json(key_payload(stage, version, arguments, environment))
