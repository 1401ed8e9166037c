"""What a stage returns and what its record holds: small, picklable facts, never live TF objects."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class StageOutput:
    """What a run function returns; the framework adds name, seed, timing and cache decision."""

    fingerprint: str  # sha256 of the output bytes, or "skipped"
    outputs: dict[str, str] = field(default_factory=dict)  # name -> file path
    info: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False

    @classmethod
    def skip(cls, reason: str) -> StageOutput:
        return cls("skipped", skipped=True, info={"reason": reason})


@dataclass(frozen=True)
class StageResult:
    """One stage's record: its seed, the sha256 of its outputs, where they are, how it got them."""

    stage: str
    seed: int
    fingerprint: str
    duration_s: float
    cached: bool = False
    skipped: bool = False
    outputs: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    # False: the same inputs may give other bytes; never cached, a difference is expected.
    deterministic: bool = True
    # The cache decision as data: {"status": "hit" | "miss" | "off", "key", "reason", "verified"}.
    cache: dict[str, Any] = field(default_factory=dict)

    def to_manifest(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    yield lambda: round(time.perf_counter() - start, 4)
