"""What every stage returns: small, picklable facts about its outputs, never live TF objects."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class StageResult:
    """One stage's record: its seed, the sha256 of its outputs, where they are."""

    stage: str
    seed: int
    fingerprint: str
    duration_s: float
    cached: bool = False
    skipped: bool = False
    outputs: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def to_manifest(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    yield lambda: round(time.perf_counter() - start, 4)
