"""Stages declare their wiring: the table and each module's wiring feed the generic loop.

Adding a stage takes one module and one line in the table: the toy stage
(tests/toy_stage.py) proves it on the real pipeline.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from seedtrail.core import pipeline_table as table
from seedtrail.core.pipeline_table import PIPELINE, StageSpec, check_table
from seedtrail.core.stage import stage
from seedtrail.core.stage_result import StageOutput, StageResult
from seedtrail.core.wiring import WIRING_MARKER
from seedtrail.run.pipeline import code_versions, stage_arguments, stages
from settings import RunSettings
from settings.seeds import derive_seed, stage_key
from tests import toy_stage
from tests.conftest import train_in_process

TOY = toy_stage.TOY_STAGE.name


def _with_toy() -> tuple[StageSpec, ...]:
    at = [s.name for s in PIPELINE].index("split") + 1
    return (*PIPELINE[:at], toy_stage.TOY_STAGE, *PIPELINE[at:])


def test_the_table_is_checked() -> None:
    check_table(_with_toy())
    first = PIPELINE[0]
    with pytest.raises(ValueError, match="do not run before it"):
        check_table((first, StageSpec("late", "m", "d", reads=("later",)), *PIPELINE[1:]))
    with pytest.raises(ValueError, match="appears twice"):
        check_table((*PIPELINE, PIPELINE[-1]))
    with pytest.raises(ValueError, match="exactly one stage must be records_epochs"):
        check_table(tuple(replace(s, records_epochs=False) for s in PIPELINE))
    with pytest.raises(ValueError, match="runs first"):
        check_table((*PIPELINE[1:], first))


def test_every_stage_of_the_table_is_wired_completely() -> None:
    """Each real stage's arguments come from its declarations, with nothing missing or extra."""
    settings = RunSettings()
    fake = {s.name: StageResult(s.name, 1, "f" * 64, 0.0) for s in PIPELINE}
    ctx = object()  # only passed through
    user = {"data.loader": {"sha256": "a" * 64}}
    for spec, declared in stages():
        args = stage_arguments(spec, declared, settings, 7, fake, ctx, user)  # type: ignore[arg-type]
        declared.signature.bind(**args)  # a complete call
        assert args["seed"] == 7
    spec, data = next((s, d) for s, d in stages() if s.name == "data")
    args = stage_arguments(spec, data, settings, 7, fake, ctx, user)  # type: ignore[arg-type]
    assert args["user_inputs"] == {"data.loader": "a" * 64}  # external content: in the key


@stage(name="toy-unwired")
def run_unwired(seed: int, extra: int, user_inputs: dict | None = None) -> StageOutput:
    return StageOutput("x")


def test_a_wiring_mistake_fails_by_name_not_as_a_stale_key() -> None:
    spec = StageSpec("toy-unwired", __name__, "d")
    with pytest.raises(ValueError, match="declares no key_inputs"):
        stage_arguments(spec, run_unwired, RunSettings(), 1, {}, None, {})
    with pytest.raises(ValueError, match="exactly when its run function takes `user_inputs`"):
        toy_stage.run_class_counts.wire(key_inputs=lambda settings, user: {})
    run_unwired.wire(key_inputs=lambda settings, user: {})
    with pytest.raises(ValueError, match=r"misses \['extra'\]"):
        stage_arguments(spec, run_unwired, RunSettings(), 1, {}, None, {})
    run_unwired.wire(key_inputs=lambda settings, user: {}, arguments=lambda s: {"extra": 1, "x": 2})
    with pytest.raises(ValueError, match=r"passes \['x'\]"):
        stage_arguments(spec, run_unwired, RunSettings(), 1, {}, None, {})


def _load(tmp_path: Path, name: str, source: str, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    # inspect.getsource finds the module's file through it
    monkeypatch.setitem(sys.modules, name, module)
    module_spec.loader.exec_module(module)
    return module


_STAGE = """
from seedtrail.core.stage import stage
from seedtrail.core.stage_result import StageOutput


@stage(name={name!r})
def run_x(seed: int) -> StageOutput:
    return StageOutput({value!r})
"""


def test_the_code_version_stops_at_the_wiring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wiring never changes a stage's bytes: editing it keeps the cache; the stage's code does not."""

    def version(module: str, value: str, wiring: str) -> str:
        source = _STAGE.format(name="toy-versioned", value=value) + wiring
        return _load(tmp_path, module, source, monkeypatch).run_x.code_version

    bare = version("toy_v1", "a", "")
    wired = version("toy_v2", "a", f"\n\n{WIRING_MARKER}: comment\nrun_x.wire()\n")
    rewired = version("toy_v3", "a", f"\n\n{WIRING_MARKER}\nrun_x.wire(check=print)\n")
    changed = version("toy_v4", "b", f"\n\n{WIRING_MARKER}\nrun_x.wire()\n")
    assert bare == wired == rewired
    assert changed != bare


@pytest.mark.slow
def test_adding_a_stage_takes_one_module_and_one_line(
    prefect_server: None, settings: RunSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The toy stage in the real pipeline: its own seed, fingerprint, cache and manifest
    entry; the other stages keep their seeds, fingerprints and cache entries."""
    before = train_in_process(settings)
    monkeypatch.setattr(table, "PIPELINE", _with_toy())  # the one line in the table
    toy_stage.CHECKED.clear()
    first = train_in_process(settings)  # same output folder: the same store
    again = train_in_process(settings)
    assert [settings.data.n_classes] * 2 == toy_stage.CHECKED  # preflight ran its check

    names = [s.name for s in _with_toy()]
    assert list(first["stages"]) == names
    record = first["stages"][TOY]
    assert record["seed"] == derive_seed(settings.seed, stage_key(TOY))  # its own seed
    assert first["seeds"]["stages"][TOY] == record["seed"]
    assert first["stage_versions"][TOY] == code_versions()[TOY]
    counts = record["info"]["counts"]
    assert sum(map(sum, counts.values())) == settings.data.n_samples
    assert record["cache"]["status"] == "miss"
    assert again["stages"][TOY]["cache"]["status"] == "hit"
    assert again["stages"][TOY]["fingerprint"] == record["fingerprint"]
    for name in before["stages"]:  # nothing else moved: seeds, bytes, cache keys
        old, new = before["stages"][name], first["stages"][name]
        assert (new["seed"], new["fingerprint"]) == (old["seed"], old["fingerprint"]), name
        if name != "environment":  # never cached: it configures the process
            assert new["cache"]["status"] == "hit", name
    manifest = json.loads(Path(again["run_dir"], "manifest.json").read_text())
    assert manifest["stages"][TOY]["fingerprint"] == record["fingerprint"]


def test_a_run_recorded_before_a_stage_was_added_still_has_all_its_seeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from seedtrail.run import integrity
    from settings.seeds import SeedPlan

    old = {
        "settings": {"seed": 5, "seeds": {}},
        "seeds": SeedPlan.derive(5).to_manifest(),
        "stage_versions": dict.fromkeys(table.STAGES, "src:0"),
    }
    monkeypatch.setattr(table, "PIPELINE", _with_toy())
    assert integrity._seed_problems(old) == []  # the stages its header names are all there
    headless = {k: v for k, v in old.items() if k != "stage_versions"}
    assert integrity._seed_problems(headless) == [f"seeds.stages lacks the seed of {TOY}"]
