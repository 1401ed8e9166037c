"""Seed derivation: stable, independent per stage, recomputable, pinnable."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from settings import RunSettings, SeedOverrides
from settings.seeds import STAGES, SeedPlan, derive_seed, epoch_seeds, stage_key


def test_adding_a_stage_changes_no_other_stage_seed() -> None:
    before = SeedPlan.derive(7)
    after = SeedPlan.derive(7, stages=(*STAGES, "calibrate"))
    assert {s: after[s] for s in STAGES} == before.seeds
    assert after["calibrate"] not in before.seeds.values()


def test_reordering_stages_changes_nothing() -> None:
    assert SeedPlan.derive(3, stages=tuple(reversed(STAGES))).seeds == SeedPlan.derive(3).seeds


def test_stage_seeds_are_distinct_and_depend_on_the_root() -> None:
    a, b = SeedPlan.derive(0), SeedPlan.derive(1)
    assert len(set(a.seeds.values())) == len(STAGES)
    assert all(a[s] != b[s] for s in STAGES)


def test_seed_is_recomputable_from_the_documented_rule() -> None:
    plan = SeedPlan.derive(12345)
    for stage in STAGES:
        key = int.from_bytes(
            __import__("hashlib").blake2b(stage.encode(), digest_size=4).digest(), "big"
        )
        expected = np.random.SeedSequence(12345, spawn_key=(key,)).generate_state(1, np.uint32)[0]
        assert plan[stage] == int(expected)
    # and equals the spawn() view of the same SeedSequence
    assert derive_seed(5, 3) == int(np.random.SeedSequence(5).spawn(4)[3].generate_state(1)[0])


def test_stage_key_is_stable_across_processes() -> None:
    code = "from settings.seeds import stage_key; print(stage_key('model'))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": h, "PATH": ""},
            cwd=str(__import__("pathlib").Path(__file__).parent.parent),
        ).stdout.strip()
        for h in ("1", "2", "random")
    }
    assert outs == {str(stage_key("model"))}


def test_pinned_stage_keeps_its_seed_when_the_root_changes() -> None:
    pinned = {"model": 99}
    a = SeedPlan.derive(1, pinned)
    b = SeedPlan.derive(2, pinned)
    assert a["model"] == b["model"] == 99
    assert a["data"] != b["data"]
    assert a.pinned == frozenset({"model"})
    assert a.to_manifest()["pinned"] == ["model"]


def test_plan_from_settings_uses_overrides() -> None:
    s = RunSettings(seed=4, seeds=SeedOverrides(split=11))
    plan = SeedPlan.from_settings(s)
    assert plan["split"] == 11
    assert plan["data"] == SeedPlan.derive(4)["data"]


def test_epoch_seeds_are_a_block_per_epoch() -> None:
    e0, e1 = epoch_seeds(10, 0, 50), epoch_seeds(10, 1, 50)
    assert e0.shape == (50,) and not np.array_equal(e0, e1)
    assert np.array_equal(
        epoch_seeds(10, 0, 80)[:50], e0
    )  # a longer block extends, never reshuffles
