"""Cache keys: a stage's identity is a hash of what determines its bytes.

key = sha256(stage name, stage code version, the stage's own settings, its seed,
the fingerprints of its inputs). Change any of them and the key changes;
change anything else (another stage's settings, the output folder) and it does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from seedtrail.fingerprint import fingerprint_json


def cache_key(
    stage: str,
    version: str,
    settings: BaseModel | None,
    seed: int,
    inputs: Mapping[str, str],
) -> str:
    payload: dict[str, Any] = {
        "stage": stage,
        "version": version,
        "settings": settings.model_dump(mode="json") if settings is not None else None,
        "seed": seed,
        "inputs": dict(inputs),
    }
    return fingerprint_json(payload)
