"""Seed derivation: one root seed, one independent seed per stage.

Rule: stage seed = SeedSequence(root, spawn_key=(stage_key(name),)).generate_state(1)[0],
where stage_key is the first 4 bytes of blake2b(name). The key depends on the
stage's name only, so adding a stage never changes another stage's seed, and
any seed can be recomputed from the root alone. Finer seeds (per epoch, per
sample) derive from the *stage* seed, so pinning a stage pins them too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from seedtrail.core import pipeline_table
from seedtrail.core.pipeline_table import STAGES

if TYPE_CHECKING:
    from settings.model import RunSettings

#: A stage name, as a type (e.g. verify's --stop-after, a flow parameter).
StageName = Literal[STAGES]  # type: ignore[valid-type]  (the registry's names)

SEED_RULE = (
    "stage seed = numpy.random.SeedSequence(root, spawn_key=(stage_key,)).generate_state(1)[0]; "
    "stage_key = int.from_bytes(blake2b(stage_name, digest_size=4), 'big'); "
    "epoch e block = SeedSequence(stage_seed, spawn_key=(e,)).generate_state(n); "
    "train: epoch order = default_rng(that SeedSequence).permutation(train indices); "
    "augment: sample i's 128-bit state = block words 4i..4i+3; "
    "model: layer i's initializer/Dropout seed = SeedSequence(model_seed, spawn_key=(i,)); "
    "split: test and val draws use SeedSequence(split_seed, spawn_key=(0,)) and (1,); "
    "a pinned stage uses settings.seeds.<stage> instead"
)


def stage_key(name: str) -> int:
    """Stable integer key of a stage name (never Python's salted `hash`)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big")


def derive_seed(parent: int, *spawn_key: int) -> int:
    """One 32-bit seed for `spawn_key` under `parent`."""
    seq = np.random.SeedSequence(parent, spawn_key=tuple(int(k) for k in spawn_key))
    return int(seq.generate_state(1, np.uint32)[0])


def epoch_seeds(stage_seed: int, epoch: int, n: int) -> np.ndarray:
    """A block of `n` per-sample seeds for one epoch of a stage, in one call."""
    return np.random.SeedSequence(stage_seed, spawn_key=(epoch,)).generate_state(n, np.uint32)


def epoch_rng(stage_seed: int, epoch: int) -> np.random.Generator:
    """A numpy Generator for one epoch of a stage (e.g. the batch order)."""
    return np.random.default_rng(np.random.SeedSequence(stage_seed, spawn_key=(epoch,)))


@dataclass(frozen=True)
class SeedPlan:
    """The seed of every stage of one run, and which were pinned."""

    root: int
    seeds: dict[str, int]
    pinned: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def derive(
        cls,
        root: int,
        overrides: dict[str, int | None] | None = None,
        stages: tuple[str, ...] | None = None,
    ) -> SeedPlan:
        """Every stage's seed (default: the table's stages, as the table is now)."""
        if stages is None:
            stages = tuple(s.name for s in pipeline_table.pipeline())
        overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        unknown = set(overrides) - set(stages)
        if unknown:
            raise ValueError(f"seed overrides for unknown stages: {sorted(unknown)}")
        seeds = {s: overrides.get(s, derive_seed(root, stage_key(s))) for s in stages}
        return cls(root=root, seeds=seeds, pinned=frozenset(overrides))

    @classmethod
    def from_settings(cls, settings: RunSettings) -> SeedPlan:
        return cls.derive(settings.seed, settings.seeds.model_dump())

    def __getitem__(self, stage: str) -> int:
        return self.seeds[stage]

    def to_manifest(self) -> dict:
        return {
            "root": self.root,
            "rule": SEED_RULE,
            "stage_keys": {s: stage_key(s) for s in self.seeds},
            "stages": dict(self.seeds),
            "pinned": sorted(self.pinned),
        }
