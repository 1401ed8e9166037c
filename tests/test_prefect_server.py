"""The temporary Prefect server lives exactly as long as the command that started it.

`kill -9` (the OOM killer, a CI timeout) of `python -m flows.train` while its server
starts, and of a sweep while a worker trains: within a generous deadline no process of
that command is left, its temporary server and worker processes included. (A server the user started is never touched: the kill -9
test of tests/test_byo_flow.py. Ctrl-C and SIGTERM: tests/test_signals.py.)
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

from tests.conftest import TINY, cli_env
from tests.test_resume_cache import SIX_EPOCHS
from tests.test_signals import _processes_with_home

pytestmark = pytest.mark.slow

GONE_DEADLINE_S = 30  # generous for a loaded machine; measured: docs/deployment.md


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _watchdogs(home: Path) -> list[int]:
    return [p for p in _processes_with_home(home) if b"seedtrail.prefect.watchdog" in _cmdline(p)]


def _manifest(root: Path) -> dict | None:
    for path in (root / "runs").glob("*/manifest.json"):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # being replaced right now
    return None


def _starting(root: Path) -> bool:
    """Its server is starting: the watchdog is there, the server not yet answering."""
    return bool(_watchdogs(root / "home"))


def _training(root: Path) -> bool:
    for pointer in (root / "runs").glob("*/checkpoints/latest.json"):
        try:
            return json.loads(pointer.read_text())["epochs_done"] >= 1
        except (OSError, ValueError):
            pass
    return False


# Two points. While the server starts: the watchdog must stop a server that is not yet
# answering. Once it is up: the command's processes (itself, the watchdog, the server) are
# the same from its first stage to its last, and a sweep's are those plus its worker, which
# the watchdog path must not miss; the sweep stands for both. (A train command killed once
# its server was up was a third point: ~25 CPU s of the suite for no other path.)
POINTS: dict[str, Callable[[Path], bool]] = {
    "server-starting": _starting,
    "sweep-training": _training,  # a sweep: its server, and its worker process
}


def _command(name: str, root: Path) -> list[str]:
    if name == "sweep-training":
        sweep = [*TINY, *SIX_EPOCHS, "--seeds", "0,1", "--sweep-dir", str(root / "runs")]
        return ["flows.sweep", *sweep]
    return ["flows.train", *TINY, *SIX_EPOCHS, "--output-dir", str(root / "runs")]


def test_kill_9_leaves_no_process_of_the_command(tmp_path: Path) -> None:
    procs: dict[str, subprocess.Popen] = {}
    for name in POINTS:
        root = tmp_path / name
        root.mkdir()
        with open(root / "stderr", "w") as err:
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", *_command(name, root)],
                cwd=root, env=cli_env(root / "home"), stdout=subprocess.DEVNULL, stderr=err,
                start_new_session=True,  # a shell job: its own group; the server is apart
            )  # fmt: skip
    killed: dict[str, float] = {}
    gone: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 400
        while len(gone) < len(procs):
            assert time.monotonic() < deadline, f"not gone: {set(procs) - set(gone)}"
            for name, proc in procs.items():
                root = tmp_path / name
                if name in killed:
                    proc.poll()  # reaped: a zombie is no process left
                    if name not in gone and not _processes_with_home(root / "home"):
                        gone[name] = time.monotonic()
                    assert time.monotonic() - killed[name] < GONE_DEADLINE_S or name in gone, (
                        f"{name}: left running: {_processes_with_home(root / 'home')}"
                    )
                elif proc.poll() is not None:
                    raise AssertionError(f"{name}: ended first:\n{(root / 'stderr').read_text()}")
                elif POINTS[name](root):
                    proc.send_signal(signal.SIGKILL)
                    killed[name] = time.monotonic()
            time.sleep(0.05)  # each poll reads every process's environ (~4 ms of CPU)
    finally:
        for name in procs:
            for pid in _processes_with_home(tmp_path / name / "home"):
                os.kill(pid, signal.SIGKILL)
    for name in procs:
        print(f"{name}: nothing left {gone[name] - killed[name]:.2f} s after kill -9")
    m = _manifest(tmp_path / "sweep-training")
    assert m is not None and m["status"] == "running", m and m["status"]  # never complete
    assert _manifest(tmp_path / "server-starting") is None  # killed before the run began
