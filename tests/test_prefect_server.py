"""The temporary Prefect server lives exactly as long as the command that started it.

`kill -9` (the OOM killer, a CI timeout) of `python -m flows.train` while its server
starts, while it trains and while it evaluates, and of a sweep while a worker trains:
within a generous deadline no process of that command is left, its temporary server and
worker processes included. A server the user started is never
touched. (Ctrl-C and SIGTERM: tests/test_signals.py.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TINY, cli_env
from tests.test_resume_cache import SIX_EPOCHS
from tests.test_signals import _processes_with_home, _wait_until

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


def _evaluating(root: Path) -> bool:
    m = _manifest(root)
    return m is not None and "train" in m["stages"] and "evaluate" not in m["stages"]


POINTS: dict[str, Callable[[Path], bool]] = {
    "server-starting": _starting,
    "training": _training,
    "evaluating": _evaluating,
    "sweep-training": _training,  # a sweep: its server, and its worker process
}


def _command(name: str, root: Path) -> list[str]:
    if name == "sweep-training":
        sweep = [*TINY, *SIX_EPOCHS, "--seeds", "0,1", "--sweep-dir", str(root / "runs")]
        return ["flows.sweep", *sweep]
    if name == "evaluating":  # a short run: the kill lands between train and evaluate
        return ["flows.train", *TINY, "--output-dir", str(root / "runs")]
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
            time.sleep(0.02)
    finally:
        for name in procs:
            for pid in _processes_with_home(tmp_path / name / "home"):
                os.kill(pid, signal.SIGKILL)
    for name in procs:
        print(f"{name}: nothing left {gone[name] - killed[name]:.2f} s after kill -9")
    for name in ("training", "evaluating", "sweep-training"):
        m = _manifest(tmp_path / name)
        assert m is not None and m["status"] == "running", (name, m and m["status"])
    assert _manifest(tmp_path / "server-starting") is None  # killed before the run began


def test_a_server_the_user_started_is_never_touched(tmp_path: Path, prefect_api_url: str) -> None:
    """With PREFECT_API_URL set the command starts no server, and its death stops none."""
    home = tmp_path / "home"
    env = {**cli_env(home), "PREFECT_API_URL": prefect_api_url}
    args = [*TINY, *SIX_EPOCHS, "--output-dir", str(tmp_path / "runs")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.train", *args], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        assert _wait_until(lambda: _training(tmp_path), 300), "training never started"
        assert not _watchdogs(home)  # no temporary server of its own
        proc.kill()
        proc.wait(timeout=30)
        assert _wait_until(lambda: not _processes_with_home(home), GONE_DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    with urllib.request.urlopen(f"{prefect_api_url}/health", timeout=10) as r:
        assert r.status == 200  # the user's server still serves


def test_the_temporary_server_goes_when_its_command_is_killed(tmp_path: Path) -> None:
    """The lifeline itself: a healthy server under the watchdog, its parent killed."""
    script = (
        "from seedtrail.prefect.server import start_server\n"
        "import time\n"
        "s = start_server(); s.wait_healthy(300)\n"
        "print(s.url, s.proc.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    home = tmp_path / "home"
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=tmp_path, env=cli_env(home),
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        url, watchdog = parent.stdout.readline().split()
        assert os.getsid(int(watchdog)) != os.getsid(parent.pid)  # Ctrl-C does not reach it
        os.kill(parent.pid, signal.SIGKILL)
        killed = time.monotonic()
        parent.wait()
        assert _wait_until(lambda: not _processes_with_home(home), GONE_DEADLINE_S), (
            _processes_with_home(home)
        )
        print(f"server gone {time.monotonic() - killed:.2f} s after kill -9 of its command")
        with pytest.raises(OSError):  # nothing answers on its port any more
            urllib.request.urlopen(f"{url}/health", timeout=5)
    finally:
        for pid in _processes_with_home(home):
            os.kill(pid, signal.SIGKILL)
