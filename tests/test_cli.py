"""`python -m flows.train` as a user runs it: bad input exits 2 cleanly. (The default run,
as the README's first command: tests/test_first_run.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, TINY, run_module

# Every test here starts Prefect or a Python process, or trains for real.
pytestmark = pytest.mark.slow


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
