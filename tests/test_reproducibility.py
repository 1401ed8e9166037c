"""Reproducibility across separate processes, on real (tiny) training runs."""

from __future__ import annotations

import pytest

from tests.conftest import TinyRuns, seed1_runs

# Every test here starts Prefect or a Python process, or trains for real.
pytestmark = pytest.mark.slow


def test_same_settings_in_two_processes_give_identical_bytes(tiny_runs: TinyRuns) -> None:
    runs = tiny_runs.get(
        base=(),
        again=((), {"PYTHONHASHSEED": "123"}),  # other process, cwd, output dir and hash seed
    )
    a, b = runs["base"], runs["again"]
    assert a.run_dir.parent != b.run_dir.parent
    assert a.fingerprints() == b.fingerprints()
    assert set(a.fingerprints()) == {
        "environment", "data", "augment", "split", "model", "train", "evaluate"
    }  # fmt: skip
    assert a.manifest["metrics"] == b.manifest["metrics"]
    assert (
        a.manifest["stages"]["train"]["info"]["epoch_fingerprints"]
        == b.manifest["stages"]["train"]["info"]["epoch_fingerprints"]
    )
    assert a.manifest["status"] == b.manifest["status"] == "complete"


def test_another_root_seed_changes_every_stage_seed_and_the_weights(tiny_runs: TinyRuns) -> None:
    runs = tiny_runs.get(base=(), seed1=("--seed", "1"))
    a, b = runs["base"].manifest, runs["seed1"].manifest
    for stage, seed in a["seeds"]["stages"].items():
        assert b["seeds"]["stages"][stage] != seed, stage
    for stage in ("data", "augment", "split", "model", "train", "evaluate"):
        assert a["stages"][stage]["fingerprint"] != b["stages"][stage]["fingerprint"], stage


def test_pinned_stage_seed_survives_a_root_change(tiny_runs: TinyRuns) -> None:
    base = tiny_runs.get(base=())["base"]
    model_seed = base.manifest["seeds"]["stages"]["model"]
    m = seed1_runs(tiny_runs)["seed1_pinned_model"].manifest
    assert m["seeds"]["stages"]["model"] == model_seed
    assert m["seeds"]["pinned"] == ["model"]
    # same init seed and input shape: the very same initial weights under another root
    assert m["stages"]["model"]["fingerprint"] == base.manifest["stages"]["model"]["fingerprint"]
    assert m["stages"]["data"]["fingerprint"] != base.manifest["stages"]["data"]["fingerprint"]
