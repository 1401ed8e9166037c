"""A new user's first command: the README's train command, as a newcomer runs it.

A fresh copy of the project (what a clone has, plus this checkout's changes), an empty
PREFECT_HOME, and a CPU hog on the other core: the temporary Prefect API must still
start (Prefect alone gives it 20 s; migrating a new database on 2 busy cores took ~25 s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from seedtrail.runtime import hardware
from tests.conftest import ROOT, TINY, cli_env
from tests.test_golden import GOLDEN, portable_fingerprints

README_TRAIN = ["run", "--frozen", "python", "-m", "flows.train"]  # after `python3 -m uv`
# What a clean terminal never shows: tracebacks, TensorFlow's and absl's start-up lines.
NOISE = ("Traceback", "oneDNN", "cuda", "absl", "I0000", "W0000", "E0000", "cpu_feature_guard")


def fresh_copy(dest: Path) -> Path:
    """The files a clone of this checkout would have, with uncommitted changes: no venv, no runs."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture
def cpu_hog() -> Iterator[None]:
    """The other core busy. Under pytest-xdist it already is: the other worker runs the
    suite's slow tests (collected first) meanwhile, so a hog would only slow the suite."""
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) >= os.cpu_count():
        yield
        return
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


def python3_with_uv() -> list[str] | None:
    """`python3 -m uv` as the README runs it: the first `python3` on PATH that has uv. Under
    `uv run` (CI) PATH starts with the project's venv, which has none, and the venv may be
    made from another interpreter than the one uv was installed for (.ci/run picks the
    system's build); the venv's own interpreter is tried last."""
    venv = Path(sys.prefix, "bin").resolve()
    found = [Path(d, "python3") for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    found = [p for p in found if p.parent.resolve() != venv and os.access(p, os.X_OK)]
    for python in dict.fromkeys([*map(str, found), str(Path(sys.base_prefix, "bin", "python3"))]):
        probe = subprocess.run([python, "-m", "uv", "--version"], capture_output=True)
        if probe.returncode == 0:
            return [python, "-m", "uv"]
    return None


@pytest.mark.slow
@pytest.mark.no_session_server  # an empty home: its own server migrates a new database
def test_readme_train_command_works_on_a_fresh_copy_with_an_empty_prefect_home(
    tmp_path: Path, cpu_hog: None
) -> None:
    """The README's first command, word for word (the default settings): it learns, prints
    a clean terminal, writes every artifact and gives the golden machine's bytes."""
    uv = python3_with_uv()
    if uv is None:  # .ci/run installs it; the README's first step
        pytest.skip("uv is not installed for python3 (python3 -m pip install uv==0.13.8)")
    clone = fresh_copy(tmp_path / "clone")
    home = tmp_path / "empty-prefect-home"
    assert not home.exists()
    env = cli_env(home, empty_home=True)
    env.pop("PYTHONPATH")  # the newcomer has none: `uv run` from the project root
    # The environment .ci/run installed from uv.lock; creating another would test uv, not us.
    env["UV_PROJECT_ENVIRONMENT"] = sys.prefix
    proc = subprocess.run(
        [*uv, *README_TRAIN], cwd=clone, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for noise in NOISE:
        assert noise not in proc.stderr + proc.stdout, noise
    assert "run complete" in proc.stdout and "test accuracy" in proc.stdout
    (manifest,) = (clone / "runs").glob("*/manifest.json")
    run_dir = manifest.parent
    assert str(run_dir.relative_to(clone)) in proc.stdout
    m = json.loads(manifest.read_text())
    assert m["status"] == "complete"
    accuracy = m["metrics"]["test_accuracy"]
    chance = 1 / m["stages"]["data"]["info"]["n_classes"]
    assert accuracy > chance + 0.35, f"test accuracy {accuracy} vs chance {chance}"
    files = {
        "model": "model.keras",
        "metrics": "metrics.json",
        "training_curves": "training_curves.png",
        "augment_preview": "augment_preview.png",
    }
    for artifact, name in files.items():
        assert (run_dir / name).stat().st_size > 0, name
        assert m["artifacts"][artifact] == name  # recorded relative to the run directory
    assert not list(run_dir.glob(".*tmp*")), "temporary files left behind"
    if hardware.is_x86():  # the README's first command gives the golden machine's bytes
        golden = GOLDEN["portable"]["default"]
        assert portable_fingerprints(m) == golden, GOLDEN["recorded"]["default"]


@pytest.mark.slow  # a fresh Python process, or the default run's real data
@pytest.mark.no_session_server
def test_a_temporary_api_that_cannot_start_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """The user's own limit wins; when it is too short, one line says what to do."""
    limit = {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "1"}
    env = cli_env(tmp_path / "home", empty_home=True, **limit)
    proc = subprocess.run(
        [sys.executable, "-m", "flows.train", *TINY, "--output-dir", str(tmp_path / "runs")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "did not start within 1 s" in errors[0]
    assert "prefect server start" in errors[0]
    assert not any((tmp_path / "runs").glob("*/manifest.json"))


def test_the_temporary_server_waits_longer_unless_the_user_chose_a_limit() -> None:
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as LIMIT
    from prefect.settings import temporary_settings

    from seedtrail.prefect.server import COLD_START_TIMEOUT_S, startup_timeout

    assert os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS") is None
    assert startup_timeout() == COLD_START_TIMEOUT_S > LIMIT.value()  # Prefect's own 20 s
    with temporary_settings({LIMIT: 7}):
        assert startup_timeout() == 7
