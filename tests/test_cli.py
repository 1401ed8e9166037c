"""`python -m flows.train` as a user runs it: defaults learn, bad input exits 2 cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seedtrail.runtime import hardware
from tests.conftest import ROOT, TINY, run_module
from tests.test_golden import GOLDEN, portable_fingerprints

# Every test here starts Prefect or a Python process, or trains for real.
pytestmark = pytest.mark.slow

NOISE = ("Traceback", "oneDNN", "cuda", "absl", "I0000", "W0000", "E0000", "cpu_feature_guard")


def test_default_run_learns_with_the_ephemeral_api_and_a_clean_terminal(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    res = run_module(
        "flows.train", ["--output-dir", str(out)], cwd=tmp_path, prefect_home=tmp_path / "home"
    )
    assert res.returncode == 0, res.stderr
    manifest = res.manifest(out)
    assert manifest["status"] == "complete"
    accuracy = manifest["metrics"]["test_accuracy"]
    chance = 1 / manifest["stages"]["data"]["info"]["n_classes"]
    assert accuracy > chance + 0.35, f"test accuracy {accuracy} vs chance {chance}"
    run_dir = Path(res.run_dirs(out)[0])
    files = {
        "model": "model.keras",
        "metrics": "metrics.json",
        "training_curves": "training_curves.png",
        "augment_preview": "augment_preview.png",
    }
    for artifact, name in files.items():
        assert (run_dir / name).stat().st_size > 0, name
        assert manifest["artifacts"][artifact] == name  # recorded relative to the run directory
    assert str(run_dir) in res.stdout and "test accuracy" in res.stdout
    for noise in NOISE:
        assert noise not in res.stderr + res.stdout, noise
    assert not list(run_dir.glob(".*tmp*")), "temporary files left behind"
    if hardware.is_x86():  # the README's first command gives the golden machine's bytes
        golden = GOLDEN["portable"]["default"]
        assert portable_fingerprints(manifest) == golden, GOLDEN["recorded"]["default"]


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    corrupt = tmp / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a complete zip")
    wrong = tmp / "wrong.npz"
    np.savez(wrong, images=np.zeros((10, 4)), labels=np.arange(10) % 2)
    return {
        "negative epochs": (["--training.epochs", "-1"], "training.epochs"),
        "test size": (["--split.test-size", "1.5"], "split.test_size"),
        "unknown flag": (["--trianing.epochs", "3"], "--trianing.epochs"),
        "missing file": (
            ["--data.kind", "file", "--data.path", str(tmp / "nope.npz")],
            "file not found",
        ),
        "corrupt npz": (["--data.kind", "file", "--data.path", str(corrupt)], "not a readable"),
        "wrong arrays": (["--data.kind", "file", "--data.path", str(wrong)], "'x' and 'y'"),
    }


@pytest.mark.parametrize(
    "case",
    ["negative epochs", "test size", "unknown flag", "missing file", "corrupt npz", "wrong arrays"],
)
def test_bad_input_exits_2_with_one_line_and_leaves_nothing(tmp_path: Path, case: str) -> None:
    args, expected = _bad_inputs(tmp_path)[case]
    out = tmp_path / "runs"
    res = run_module(
        "flows.train",
        [*args, "--output-dir", str(out)],
        cwd=tmp_path,
        prefect_home=tmp_path / "home",
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in res.stderr
    assert not out.exists() or not any(out.iterdir()), "a run directory was left behind"


def test_settings_reach_the_manifest_complete(tiny_runs) -> None:
    run = tiny_runs.get(base=())["base"]
    m = run.manifest
    assert m["settings"]["training"]["epochs"] == int(TINY[TINY.index("--training.epochs") + 1])
    assert m["settings"]["determinism"]["intra_op_threads"] >= 1
    assert set(m["seeds"]) >= {"root", "rule", "stages", "pinned"}
    for stage, st in m["stages"].items():
        assert st["seed"] == m["seeds"]["stages"][stage]
        assert {"fingerprint", "duration_s", "cached"} <= set(st)
    env = m["environment"]
    assert env["determinism"]["op_determinism"] is True
    assert env["uv_lock_sha256"] and env["packages"]["tensorflow"]
    saved = json.loads((run.run_dir / "metrics.json").read_text())
    assert saved == m["metrics"]
    assert (ROOT / "uv.lock").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "args", "problem"),
    [
        ("flows.train", ["--training.epoch", "3"], "did you mean --training.epochs?"),
        ("flows.sweep", ["--seeds", "0,1", "--vary", "weights"], "--vary: unknown source"),
        ("flows.verify", ["no-such-run"], "no-such-run"),
        ("flows.compare", ["no-such-a", "no-such-b"], "no-such-a"),
    ],
)
def test_bad_flags_are_answered_before_prefect_is_imported(
    tmp_path: Path, module: str, args: list[str], problem: str
) -> None:
    """A mistyped flag costs a fraction of a second, not Prefect's import (seconds)."""
    res = run_module(module, args, cwd=tmp_path, prefect_home=tmp_path / "h",
                     env={"PYTHONPROFILEIMPORTTIME": "1"})  # fmt: skip
    imported = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines()
                if line.startswith("import time:")}  # fmt: skip
    errors = [line for line in res.stderr.splitlines() if not line.startswith("import time:")]
    assert res.returncode == 2, res.stderr[-2000:]
    assert len(errors) == 1 and problem in errors[0], errors
    assert "settings.cli" in imported  # the profile was read: the flags were checked
    assert not {m for m in imported if m == "prefect" or m.startswith("prefect.")}, "Prefect"
