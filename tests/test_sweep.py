"""Sweep logic as plain functions: seed lists, per-run settings, statistics, tables (no Prefect, no TF)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from seedtrail.core.errors import InputError
from seedtrail.run.manifest import Metrics
from seedtrail.sweep.plan import (
    VARY_STAGES,
    describe,
    parse_seeds,
    parse_vary,
    plan_runs,
    run_metrics,
    runs_table,
    seed_list,
    settings_for,
    stats_table,
    summarize,
    t_critical_95,
)
from settings.model import RunSettings, SeedOverrides
from settings.seeds import SeedPlan

OUT = Path("/tmp/sweep-out")


def test_parse_seeds_lists_and_ranges() -> None:
    assert parse_seeds("0,1,2,3") == [0, 1, 2, 3]
    assert parse_seeds("5-7, 2,5") == [5, 6, 7, 2]


@pytest.mark.parametrize("text", ["", "1,x", "3-1", "-1", "4294967296"])
def test_parse_seeds_rejects_bad_input(text: str) -> None:
    with pytest.raises(InputError, match="--seeds"):
        parse_seeds(text)


def test_seed_list_n_seeds_from_base() -> None:
    assert seed_list(None, 3, 10) == [10, 11, 12]
    assert seed_list("4,2", None, 0) == [4, 2]
    with pytest.raises(InputError, match="not both"):
        seed_list("1", 2, 0)
    with pytest.raises(InputError, match="--n-seeds"):
        seed_list(None, 0, 0)


def test_parse_vary() -> None:
    assert parse_vary("model") == ["model"]
    assert parse_vary("model,data,model") == ["model", "data"]
    with pytest.raises(InputError, match="unknown source 'weights'"):
        parse_vary("weights")


def test_vary_all_is_the_single_run_with_that_root_seed() -> None:
    base = RunSettings(seed=3, seeds=SeedOverrides(split=99))
    s = settings_for(base, "all", 7, OUT)
    assert s == base.model_copy(update={"seed": 7, "output_dir": OUT})
    assert SeedPlan.from_settings(s)["split"] == 99  # the user's pin stays


@pytest.mark.parametrize("stage", VARY_STAGES)
def test_vary_one_stage_moves_only_that_seed(stage: str) -> None:
    base = RunSettings(seed=3)
    base_plan = SeedPlan.from_settings(base)
    for s in (0, 1, 2):
        plan = SeedPlan.from_settings(settings_for(base, stage, s, OUT))
        assert plan.root == 3
        assert plan[stage] == SeedPlan.derive(s)[stage]  # what `--seed s` would give it
        assert {k: v for k, v in plan.seeds.items() if k != stage} == {
            k: v for k, v in base_plan.seeds.items() if k != stage
        }
    seeds = {SeedPlan.from_settings(settings_for(base, stage, s, OUT))[stage] for s in range(4)}
    assert len(seeds) == 4


def test_vary_a_pinned_stage_is_bad_input() -> None:
    base = RunSettings(seeds=SeedOverrides(model=5))
    with pytest.raises(InputError, match=r"seeds\.model is pinned"):
        settings_for(base, "model", 1, OUT)


def test_plan_runs_covers_every_source_and_seed() -> None:
    runs = plan_runs(RunSettings(), ["model", "data"], [0, 1, 2], OUT)
    assert [(r.vary, r.seed) for r in runs] == [
        ("model", 0), ("model", 1), ("model", 2), ("data", 0), ("data", 1), ("data", 2)
    ]  # fmt: skip
    assert all(r.settings.output_dir == OUT for r in runs)


def test_t_critical_values() -> None:
    assert t_critical_95(1) == pytest.approx(12.706, abs=1e-3)
    assert t_critical_95(3) == pytest.approx(3.182, abs=1e-3)
    assert t_critical_95(1000) == pytest.approx(1.962, abs=1e-3)


def test_describe_mean_std_ci() -> None:
    values = [0.5, 0.7, 0.6, 0.8]
    d = describe(values)
    assert d["n"] == 4
    assert d["mean"] == pytest.approx(0.65)
    assert d["std"] == pytest.approx(statistics.stdev(values))
    assert (d["min"], d["max"]) == (0.5, 0.8)
    half = 3.182446305284263 * statistics.stdev(values) / 2
    assert d["ci95_low"] == pytest.approx(0.65 - half)
    assert d["ci95_high"] == pytest.approx(0.65 + half)


def test_describe_one_value_has_no_spread() -> None:
    d = describe([0.4])
    assert d["mean"] == 0.4 and d["std"] is None and d["ci95_low"] is None
    assert describe([])["n"] == 0


def test_run_metrics_takes_scalars_and_macro_f1() -> None:
    m = {
        "test_loss": 1.5,
        "test_accuracy": 0.5,
        "test_samples": 32,
        "per_class": {
            "a": {"precision": 1.0, "recall": 0.1, "f1": 0.2, "support": 2},
            "b": {"precision": 0.5, "recall": 0.7, "f1": 0.6, "support": 2},
        },
        "confusion_matrix": [[1, 0], [0, 1]],
    }
    assert run_metrics(Metrics.model_validate(m)) == {
        "test_loss": 1.5,
        "test_accuracy": 0.5,
        "test_macro_f1": 0.4,
    }


def test_summarize_ignores_failed_runs_and_keeps_sources_apart() -> None:
    runs = [
        {"vary": "model", "seed": 0, "status": "complete", "metrics": {"acc": 0.5}},
        {"vary": "model", "seed": 1, "status": "complete", "metrics": {"acc": 0.7}},
        {"vary": "model", "seed": 2, "status": "failed", "error": "boom"},
        {"vary": "data", "seed": 0, "status": "complete", "metrics": {"acc": 0.1}},
    ]
    s = summarize(runs)
    assert s["model"]["acc"]["n"] == 2
    assert s["model"]["acc"]["mean"] == pytest.approx(0.6)
    assert s["data"]["acc"]["n"] == 1
    table = stats_table(s)
    assert "| acc | model | 2 | 0.6000 |" in table
    assert "| acc | data | 1 | 0.1000 |" in table
    rt = runs_table(runs)
    assert "| model | 2 | failed |" in rt and "boom" in rt
