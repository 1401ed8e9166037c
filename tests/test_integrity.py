"""A manifest must match its own content: edited settings, metrics or fingerprints are refused.

The manifests here are written by seedtrail's own writer (RunDirectory), so the seal and
the self-describing fingerprints are the ones a real run leaves.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from seedtrail.core.errors import InputError
from seedtrail.core.stage_result import StageResult
from seedtrail.run.manifest import NotARun, read_manifest
from seedtrail.run.rundir import RunDirectory, settings_fingerprint
from settings import RunSettings
from settings.seeds import STAGES, SeedPlan
from tests.test_compare import make_manifest


def written_run(root: Path, status: str = "complete", **metrics: Any) -> Path:
    """A run directory written stage by stage by RunDirectory, as flows.train writes it."""
    s = RunSettings(output_dir=root)
    shape = make_manifest(s)
    run = RunDirectory.create(
        root,
        "20260101-000000-seed0-abcdef-0000",
        header={
            "settings": s.model_dump(mode="json"),
            "settings_fingerprint": settings_fingerprint(s),
            "seeds": SeedPlan.from_settings(s).to_manifest(),
            "stage_versions": shape["stage_versions"],
        },
    )
    run_metrics = {**shape["metrics"], **metrics}
    for name in STAGES if status == "complete" else STAGES[:4]:
        rec = shape["stages"][name]
        info = {**rec["info"], "metrics": run_metrics} if name == "evaluate" else rec["info"]
        run.record_stage(StageResult(name, rec["seed"], rec["fingerprint"], 0.1, info=info))
    run.set("environment", shape["environment"])
    if status == "complete":
        run.set("metrics", run_metrics)
    run.finish(status)
    return run.path


def _edit(run: Path, change: Any) -> None:
    mf = run / "manifest.json"
    m = json.loads(mf.read_text())
    change(m)
    mf.write_text(json.dumps(m, indent=2))


def _refused(run: Path) -> str:
    with pytest.raises(NotARun) as err:
        read_manifest(run)
    (line,) = err.value.problems
    assert "\n" not in line and "edited" in line, line
    return line


def test_a_manifest_as_written_is_read(tmp_path: Path) -> None:
    from seedtrail.run import integrity

    m = read_manifest(written_run(tmp_path))
    assert m.complete and m.manifest_version == 3
    assert integrity.problems(json.loads((Path(m.run_dir) / "manifest.json").read_text())) == []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda m: m["settings"]["training"].update(epochs=7), "settings_fingerprint"),
        (lambda m: m["seeds"].update(root=8), "seeds.root 8 is not settings.seed 0"),
        (lambda m: m["metrics"].update(test_accuracy=0.99), "evaluate stage's record"),
        (lambda m: m["metrics"].update(test_loss=math.nan), "evaluate stage's record"),
        (lambda m: m["seeds"]["stages"].update(train=1), "seeds.stages.train"),
        (lambda m: m["stages"]["train"].update(fingerprint="0" * 64), "last epoch"),
        (lambda m: m["stages"]["split"].update(fingerprint="0" * 64), "manifest_sha256"),
        (lambda m: m["environment"].update(python="3.9"), "manifest_sha256"),
        (lambda m: m.pop("manifest_sha256"), "manifest_sha256 is missing"),
    ],
    ids=[
        "setting",
        "seed",
        "metric",
        "metric-nan",
        "stage-seed",
        "train-fp",
        "split-fp",
        "environment",
        "seal-removed",
    ],
)
def test_an_edited_manifest_is_refused_naming_what_was_edited(
    tmp_path: Path, change: Any, named: str
) -> None:
    run = written_run(tmp_path)
    _edit(run, change)
    assert named in _refused(run)


def test_both_copies_of_a_metric_edited_still_break_the_seal(tmp_path: Path) -> None:
    run = written_run(tmp_path)

    def nan_everywhere(m: dict) -> None:
        m["metrics"]["test_loss"] = math.nan
        m["stages"]["evaluate"]["info"]["metrics"]["test_loss"] = math.nan

    _edit(run, nan_everywhere)
    assert "manifest_sha256" in _refused(run)


def test_a_nan_the_run_itself_recorded_is_kept_faithfully(tmp_path: Path) -> None:
    """A diverged training really gives a NaN loss: sealed by the run, it is read as NaN."""
    m = read_manifest(written_run(tmp_path, test_loss=math.nan))
    assert math.isnan(m.metrics.test_loss)


def _unsealed(m: dict) -> None:
    """What seedtrail wrote before the seal (version 2)."""
    m.pop("manifest_sha256")
    m["manifest_version"] = 2


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda m: m["settings"]["training"].update(epochs=7), "settings_fingerprint"),
        (lambda m: m["metrics"].update(test_loss=0.1), "evaluate stage's record"),
        (
            lambda m: (
                m["stages"]["evaluate"]["info"]["metrics"].update(test_loss=math.nan)
                or m["metrics"].update(test_loss=math.nan)
            ),
            "metrics.test_loss is not a finite",
        ),
    ],
    ids=["setting", "metric", "nan-in-both-copies"],
)
def test_an_unsealed_manifest_is_checked_for_what_it_proves_about_itself(
    tmp_path: Path, change: Any, named: str
) -> None:
    run = written_run(tmp_path)
    _edit(run, _unsealed)
    read_manifest(run)  # unedited, an old manifest still reads
    _edit(run, change)
    assert named in _refused(run)


def test_compare_and_verify_refuse_an_edited_manifest_in_one_line(tmp_path: Path) -> None:
    from flows.compare import main as compare
    from flows.verify import main as verify

    good = written_run(tmp_path / "a")
    edited = written_run(tmp_path / "b")
    _edit(edited, lambda m: m["settings"]["training"].update(learning_rate=0.5))
    for call in (lambda: compare([str(good), str(edited)]), lambda: verify([str(edited)])):
        with pytest.raises(InputError) as err:
            call()
        (line,) = err.value.problems
        assert "edited after the run wrote it" in line and str(edited) in line


def test_resume_refuses_a_run_whose_recorded_settings_were_changed(tmp_path: Path) -> None:
    """Resuming with other settings would keep the old settings_fingerprint: refused instead."""
    from seedtrail.cli.train_args import resumed_settings

    run = written_run(tmp_path, status="interrupted")
    assert resumed_settings(run, []) == RunSettings(output_dir=tmp_path)
    before = copy.deepcopy(json.loads((run / "manifest.json").read_text()))
    _edit(run, lambda m: m["settings"]["training"].update(epochs=9))
    with pytest.raises(InputError) as err:
        resumed_settings(run, [])
    (line,) = err.value.problems
    assert line.startswith("--resume: ") and "settings_fingerprint" in line
    after = json.loads((run / "manifest.json").read_text())
    assert after["settings"]["training"]["epochs"] == 9  # untouched by the refusal
    assert after["settings_fingerprint"] == before["settings_fingerprint"]
