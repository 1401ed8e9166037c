"""The stage contract: one declaration derives name, key, cache decision, record and registry.

Plain functions, no Prefect: `DeclaredStage.execute` is the body of the stage's task.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import tasks.data  # declares the stages looked up below (with tasks.evaluate)
import tasks.evaluate  # noqa: F401
from seedtrail.core import pipeline_table as registry
from seedtrail.core.stage import DeclaredStage, stage
from seedtrail.core.stage_cache import StageContext
from seedtrail.core.stage_result import StageOutput, StageResult
from settings import DataSettings, SeedOverrides, SplitSettings

_draws = itertools.count()


@stage(name="toy-noisy", deterministic=False)
def run_noisy(ctx: StageContext, seed: int) -> StageOutput:
    return StageOutput(f"draw-{next(_draws)}")


@stage(name="toy-sum", cache_exclude=("verbose",))
def run_sum(
    ctx: StageContext, s: SplitSettings, seed: int, up: StageResult, verbose: bool
) -> StageOutput:
    return StageOutput(f"{s.test_size}+{seed}+{up.fingerprint}")


def _ctx(tmp_path: Path, use_cache: bool = True) -> StageContext:
    return StageContext(run_dir=tmp_path / "run", store=tmp_path / "store", use_cache=use_cache)


def _data(**info) -> StageResult:
    return StageResult("data", 1, "f" * 64, 0.0, info={"class_names": ["cat", "dog"], **info})


def test_name_seed_and_record_are_derived(tmp_path: Path) -> None:
    result = run_sum.execute(_ctx(tmp_path), SplitSettings(), 7, _data(), verbose=False)
    assert (result.stage, result.seed, result.deterministic) == ("toy-sum", 7, True)
    assert result.fingerprint == f"0.2+7+{'f' * 64}"
    assert result.cache["status"] == "miss" and result.cache["reason"] == "no entry"
    assert registry.declared("data").name == "data"  # run_data -> "data"


def test_every_argument_is_in_the_key_except_declared_exclusions(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    base = {"ctx": ctx, "s": SplitSettings(), "seed": 1, "up": _data(), "verbose": False}
    key = run_sum.key(base)
    for name, other in {
        "s": SplitSettings(test_size=0.3),
        "seed": 2,
        "up": _data(extra=1),  # same bytes, other record
    }.items():
        assert run_sum.key({**base, name: other}) != key, name
    assert run_sum.key({**base, "verbose": True}) == key  # declared in cache_exclude
    assert run_sum.key({**base, "ctx": _ctx(tmp_path / "elsewhere")}) == key  # where, not what


def test_a_key_cannot_silently_skip_an_argument_type(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="cannot derive a cache key from object"):
        run_sum.key({"ctx": None, "s": SplitSettings(), "seed": 1, "up": object()})


def test_a_path_setting_keys_on_the_file_content(tmp_path: Path) -> None:
    data = registry.declared("data")
    f = tmp_path / "d.csv"
    f.write_text("a,label\n1,x\n")
    s = DataSettings(kind="file", path=f)
    before = data.key({"ctx": _ctx(tmp_path), "s": s, "seed": 0})
    f.write_text("a,label\n2,x\n")
    assert data.key({"ctx": _ctx(tmp_path), "s": s, "seed": 0}) != before


def test_evaluate_key_covers_the_class_names_not_only_the_data_bytes(tmp_path: Path) -> None:
    """Two CSVs that differ only in label names give the same data bytes (the old stale hit)."""
    evaluate = registry.declared("evaluate")
    split = StageResult("split", 2, "s" * 64, 0.0)
    train = StageResult("train", 3, "t" * 64, 0.0)
    args = {"ctx": _ctx(tmp_path), "seed": 4, "split": split, "train": train}
    cats = evaluate.key({**args, "data": _data(class_names=["cat", "dog"])})
    ants = evaluate.key({**args, "data": _data(class_names=["ant", "bee"])})
    assert cats != ants


def test_the_cache_decision_is_recorded_as_data(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    args = (ctx, SplitSettings(), 1, _data())
    first = run_sum.execute(*args, verbose=False)
    second = run_sum.execute(*args, verbose=True)
    assert (first.cached, first.cache["status"]) == (False, "miss")
    assert second.cached and second.cache == {
        "status": "hit",
        "key": first.cache["key"],
        "verified": True,
    }
    assert second.fingerprint == first.fingerprint
    off = run_sum.execute(
        _ctx(tmp_path, use_cache=False), SplitSettings(), 1, _data(), verbose=False
    )
    assert off.cache["status"] == "off" and "--no-cache" in off.cache["reason"]


def test_a_nondeterministic_stage_is_never_cached_and_says_so(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    a, b = run_noisy.execute(ctx, 1), run_noisy.execute(ctx, 1)
    assert a.fingerprint != b.fingerprint and not b.cached
    assert b.deterministic is False
    assert b.cache["status"] == "off" and b.cache["reason"] == "not deterministic"
    assert not (tmp_path / "store" / "cache").exists()


def test_code_version_hashes_the_source_and_version_overrides_it() -> None:
    assert run_sum.code_version.startswith("src:")
    pinned = DeclaredStage(run_sum.fn, name="toy-pinned", version="7")
    assert pinned.code_version == "7"
    from seedtrail.run.pipeline import code_versions  # imports every stage's module

    versions = code_versions()
    assert list(versions) == list(registry.STAGES)
    assert len(set(versions.values())) == len(versions)  # one module each


def test_the_registry_is_the_one_list_of_stages() -> None:
    from seedtrail.run.pipeline import stages

    stages()  # imports every stage's module: each declares itself

    assert list(SeedOverrides.model_fields) == list(registry.STAGES)
    for spec in registry.PIPELINE:
        assert registry.declared(spec.name).fn.__module__ == spec.module
        field = SeedOverrides.model_fields[spec.name]
        assert field.description == spec.seed_description
    assert registry.VARY_STAGES == ("data", "augment", "split", "model", "train")
    assert registry.STAGES[1:] == registry.DATA_STAGES


def test_the_table_never_imports_a_stage_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(registry._declared, "train", raising=False)  # declared or not yet
    with pytest.raises(LookupError, match=r"'train' is not declared yet: import tasks\.train"):
        registry.declared("train")


def test_declaration_errors_are_caught_at_import() -> None:
    with pytest.raises(ValueError, match="needs a `seed`"):
        DeclaredStage(lambda ctx: StageOutput("x"), name="toy-noseed")
    with pytest.raises(ValueError, match="cache_exclude names no argument"):
        DeclaredStage(run_sum.fn, name="toy-bad", cache_exclude=("nope",))
