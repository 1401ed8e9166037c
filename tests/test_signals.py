"""Ctrl-C from a terminal and SIGTERM from kill/systemd/Kubernetes, sent the way they really come.

A terminal sends SIGINT to the whole foreground process group, which includes
Prefect's temporary API server; `kill PID` hits the process alone, `kill -- -PGID`
the group. Each must end the run "interrupted" and resumable, within seconds, with
no traceback and nothing left running (the temporary server included).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from seedtrail.prefect_compat import TELEMETRY_OFF
from tests.conftest import TINY, TinyRuns, cli_env, run_module
from tests.test_resume_cache import SIX_EPOCHS, _wait_for_checkpoint

pytestmark = pytest.mark.slow

EXIT_DEADLINE_S = 60  # generous for a loaded machine; a hang took minutes


def _processes_with_home(home: Path) -> list[int]:
    """Live processes started with this PREFECT_HOME: the run and any server it started."""
    marker = f"PREFECT_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone meanwhile, or not ours
        if marker in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_until(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _start(module: str, args: list[str], tmp_path: Path, home: Path) -> subprocess.Popen:
    """Without PREFECT_API_URL: the command starts Prefect's temporary server, as a user's would."""
    # Without the telemetry switches too: the commands must set them for their server.
    env = {k: v for k, v in cli_env(home).items() if k not in TELEMETRY_OFF}
    with open(tmp_path / "stdout", "w") as stdout, open(tmp_path / "stderr", "w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=tmp_path,
            env=env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group, as a shell job has
        )


def _stop_and_wait(
    proc: subprocess.Popen, home: Path, sig: signal.Signals, to_group: bool, stderr_log: Path
) -> tuple[float, bool]:
    """Send the signal; (seconds until the command exited, whether nothing is left running)."""
    if to_group:
        os.killpg(proc.pid, sig)  # what a terminal does with Ctrl-C
    else:
        os.kill(proc.pid, sig)
    sent = time.monotonic()
    try:
        proc.wait(timeout=EXIT_DEADLINE_S)
    except subprocess.TimeoutExpired:
        tail = stderr_log.read_text()[-4000:]
        raise AssertionError(
            f"still running {EXIT_DEADLINE_S} s after the signal:\n{tail}"
        ) from None
    took = time.monotonic() - sent
    gone = _wait_until(lambda: not _group_alive(proc.pid), 30) and _wait_until(
        lambda: not _processes_with_home(home), 30
    )
    return took, gone


def _check_server(home: Path, pgid: int) -> None:
    """Prefect's temporary server: outside the run's process group, and told not to phone home."""
    servers = [
        pid
        for pid in _processes_with_home(home)
        if b"prefect.server.api.server:create_app" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(servers) == 1, f"expected one temporary server, found {servers}"
    assert os.getpgid(servers[0]) != pgid  # a terminal's Ctrl-C to the group does not reach it
    raw = Path(f"/proc/{servers[0]}/environ").read_bytes().decode(errors="replace")
    environ = dict(kv.split("=", 1) for kv in raw.split("\0") if "=" in kv)
    for key, value in TELEMETRY_OFF.items():  # Prefect re-exports its own as "False"
        assert environ.get(key, "").lower() == value, (key, environ.get(key))


def _kill_leftovers(home: Path) -> None:
    for pid in _processes_with_home(home):  # never leak into the next test
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("sig", "to_group", "code"),
    [
        (signal.SIGINT, True, 130),  # Ctrl-C in a terminal
        (signal.SIGTERM, False, 143),  # kill PID, systemd, Kubernetes
        (signal.SIGTERM, True, 143),  # kill -- -PGID
    ],
    ids=["sigint-group", "sigterm-pid", "sigterm-group"],
)
def test_signal_marks_the_run_interrupted_stops_everything_and_resumes(
    tmp_path: Path, tiny_runs: TinyRuns, sig: signal.Signals, to_group: bool, code: int
) -> None:
    reference = tiny_runs.get(six_epochs=SIX_EPOCHS)["six_epochs"].manifest
    out, home = tmp_path / "runs", tmp_path / "home"
    proc = _start("flows.train", [*TINY, *SIX_EPOCHS, "--output-dir", str(out)], tmp_path, home)
    try:
        run_dir = _wait_for_checkpoint(out, 2)  # epochs 1-2 done: now in epoch 3 of 6
        _check_server(home, proc.pid)
        took, gone = _stop_and_wait(proc, home, sig, to_group, tmp_path / "stderr")
    finally:
        _kill_leftovers(home)
    err = (tmp_path / "stderr").read_text()
    assert proc.returncode == code, err
    assert "Traceback" not in err, err
    assert gone, f"left running: {_processes_with_home(home)}"
    print(f"{sig.name} to {'group' if to_group else 'pid'}: exit {code} after {took:.1f} s")

    interrupted = json.loads((run_dir / "manifest.json").read_text())
    assert interrupted["status"] == "interrupted"
    assert "train" not in interrupted["stages"]  # the signal landed inside training
    assert f"--resume {run_dir}" in err

    resumed = run_module(
        "flows.train",
        ["--resume", str(run_dir)],
        cwd=tmp_path,
        prefect_home=home,
        env={"PREFECT_API_URL": tiny_runs.api_url},
    )
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads((run_dir / "manifest.json").read_text())
    assert final["status"] == "complete"
    assert final["stages"]["train"]["info"]["resumed_after_epoch"] >= 2
    assert final["stages"]["train"]["fingerprint"] == reference["stages"]["train"]["fingerprint"]


@pytest.mark.parametrize(
    ("sig", "to_group", "code"),
    [(signal.SIGINT, True, 130), (signal.SIGTERM, False, 143)],
    ids=["sigint-group", "sigterm-pid"],
)
def test_sweep_stops_its_workers_and_marks_their_runs_interrupted(
    tmp_path: Path, sig: signal.Signals, to_group: bool, code: int
) -> None:
    sweep_dir, home = tmp_path / "sweep", tmp_path / "home"
    args = [*TINY, *SIX_EPOCHS, "--seeds", "0,1", "--sweep-dir", str(sweep_dir)]
    proc = _start("flows.sweep", args, tmp_path, home)
    try:
        run_dir = _wait_for_checkpoint(sweep_dir, 2)
        # SIGTERM to the sweep alone reaches its workers only through the sweep itself.
        took, gone = _stop_and_wait(proc, home, sig, to_group, tmp_path / "stderr")
    finally:
        _kill_leftovers(home)
    err = (tmp_path / "stderr").read_text()
    assert proc.returncode == code, err
    assert "Traceback" not in err and "leaked semaphore" not in err, err
    assert gone, f"left running: {_processes_with_home(home)}"
    print(f"sweep {sig.name} to {'group' if to_group else 'pid'}: exit {code} after {took:.1f} s")
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    assert not (sweep_dir / "summary.json").exists()  # an interrupted sweep claims no summary
