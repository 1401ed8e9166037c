"""Ctrl-C from a terminal and SIGTERM from kill/systemd/Kubernetes, sent the way they really come.

A terminal sends SIGINT to the whole foreground process group, which includes
Prefect's temporary API server unless it runs in its own session; `kill PID` hits
the process alone, `kill -- -PGID` the group. Each must end the run "interrupted"
and resumable, within seconds, with no traceback and nothing left running (the
temporary server included).

The train scenarios run side by side (one test, one process each). None is resumed here:
a Ctrl-C'd sweep's rerun continues its interrupted run to the uninterrupted run's bytes
(tests/test_run_lock.py), a run killed -9 resumes to them (tests/test_resume_cache.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from seedtrail.prefect.environment import TELEMETRY_OFF
from tests.conftest import TINY, TinyRuns, cli_env
from tests.test_resume_cache import SIX_EPOCHS_K2

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


@dataclass
class Command:
    """A command started as a shell job: its own process group, its own PREFECT_HOME."""

    proc: subprocess.Popen
    root: Path
    sent: float = 0.0

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def stderr(self) -> str:
        return (self.root / "stderr").read_text()

    def signal(self, sig: signal.Signals, to_group: bool) -> None:
        self.sent = time.monotonic()
        if to_group:
            os.killpg(self.proc.pid, sig)  # what a terminal does with Ctrl-C
        else:
            os.kill(self.proc.pid, sig)

    def wait_gone(self) -> tuple[float, bool]:
        """(seconds from the signal until the exit was seen, whether nothing is left running)."""
        try:
            self.proc.wait(timeout=EXIT_DEADLINE_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"still running {EXIT_DEADLINE_S} s after the signal:\n{self.stderr[-4000:]}\n"
                f"its threads:\n{self.stacks()}"
            ) from None
        took = time.monotonic() - self.sent
        gone = _wait_until(lambda: not _group_alive(self.proc.pid), 30) and _wait_until(
            lambda: not _processes_with_home(self.home), 30
        )
        return took, gone

    def stacks(self) -> str:
        """Every thread's Python stack, dumped by the command on SIGUSR1 (`_start`): where a
        command that does not exit is stuck (seen once in ~30 suites: a SIGTERM while the
        server started; its stderr was empty, as TensorFlow's import held fd 2)."""
        dump = self.root / "stacks"
        if self.proc.poll() is None:  # never a signal to a reaped (reusable) pid
            with contextlib.suppress(ProcessLookupError):  # it may end meanwhile
                os.kill(self.proc.pid, signal.SIGUSR1)
                _wait_until(lambda: dump.exists() and dump.stat().st_size > 0, 10)
        return dump.read_text() if dump.exists() else "(none dumped)"

    def kill_leftovers(self) -> None:
        for pid in _processes_with_home(self.home):  # never leak into the next test
            os.kill(pid, signal.SIGKILL)


def _start(module: str, args: list[str], root: Path, api_url: str | None = None) -> Command:
    """Without `api_url` (PREFECT_API_URL): the command starts Prefect's temporary server, as
    a user's would; with it, it uses that server."""
    root.mkdir(parents=True)
    # Without the telemetry switches too: the commands must set them for their server.
    env = {k: v for k, v in cli_env(root / "home").items() if k not in TELEMETRY_OFF}
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    # `python -m module args`, run by runpy after one line that has faulthandler dump every
    # thread's stack into `stacks` on SIGUSR1 (its own file: fd 2 may be TensorFlow's).
    dump = (
        "import faulthandler, signal; faulthandler.register(signal.SIGUSR1, "
        f"file=open({str(root / 'stacks')!r}, 'w'), all_threads=True)"
    )
    run = (
        f"import runpy, sys; sys.argv = [{module!r}, *sys.argv[1:]]; "
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    )
    with open(root / "stdout", "w") as stdout, open(root / "stderr", "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", f"{dump}\n{run}", *args],
            cwd=root,
            env=env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group, as a shell job has
        )
    return Command(proc, root)


def _check_server(cmd: Command) -> None:
    """Prefect's temporary server: outside the run's process group, and told not to phone home."""
    cmdlines = {p: Path(f"/proc/{p}/cmdline").read_bytes() for p in _processes_with_home(cmd.home)}
    servers = [p for p, c in cmdlines.items() if b"server\0start" in c and b"watchdog" not in c]
    assert len(servers) == 1, f"expected one temporary server, found {servers}"
    watchdog = _parent(servers[0])
    assert b"seedtrail.prefect.watchdog" in cmdlines.get(watchdog, b""), cmdlines
    for pid in (servers[0], watchdog):  # a terminal's Ctrl-C does not reach them
        assert os.getpgid(pid) != cmd.proc.pid
    raw = Path(f"/proc/{servers[0]}/environ").read_bytes().decode(errors="replace")
    environ = dict(kv.split("=", 1) for kv in raw.split("\0") if "=" in kv)
    for key, value in TELEMETRY_OFF.items():
        assert environ.get(key, "").lower() == value, (key, environ.get(key))


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _checkpointed_run(cmd: Command, epochs_done: int) -> Path | None:
    """The run directory once `epochs_done` epochs are committed, else None (not yet)."""
    if cmd.proc.poll() is not None:
        raise AssertionError(f"{cmd.root.name} exited early:\n{cmd.stderr[-4000:]}")
    for pointer in (cmd.root / "runs").glob("*/checkpoints/latest.json"):
        try:
            if json.loads(pointer.read_text())["epochs_done"] >= epochs_done:
                return pointer.parent.parent
        except (OSError, ValueError):
            pass  # being replaced right now
    return None


# `kill -- -PGID` (SIGTERM to the group) is not a third train scenario: a train command's
# group holds that one process (its temporary server and watchdog have their own session,
# checked by _check_server), so it is `kill PID` again. A group of several processes (a
# sweep and its worker) gets Ctrl-C in tests/test_run_lock.py.
SCENARIOS = {  # name: (signal, to the group?, exit status)
    "sigint-group": (signal.SIGINT, True, 130),  # Ctrl-C in a terminal
    "sigterm-pid": (signal.SIGTERM, False, 143),  # kill PID, systemd, Kubernetes
}
# Ctrl-C to the group is the case where the temporary server's own session matters (the
# terminal signals the whole group): that command starts one. `kill PID` reaches the command
# alone, which stops its server by the same path as after Ctrl-C (seedtrail/cli/main.py): it
# uses the session's server, sparing a second temporary one (~20 CPU s on 2 cores).
OWN_SERVER = {"sigint-group"}


def test_signals_mark_train_runs_interrupted_and_stop_everything(
    tmp_path: Path, tiny_runs: TinyRuns
) -> None:
    cmds = {
        name: _start(
            "flows.train", [*TINY, *SIX_EPOCHS_K2, "--output-dir", str(tmp_path / name / "runs")],
            tmp_path / name, None if name in OWN_SERVER else tiny_runs.api_url,
        )
        for name in SCENARIOS
    }  # fmt: skip
    run_dirs: dict[str, Path] = {}
    results = {}
    try:
        deadline = time.monotonic() + 300
        while len(run_dirs) < len(cmds):  # each signalled as soon as its epoch 1 is committed
            assert time.monotonic() < deadline, "no checkpoint appeared"
            for name, cmd in cmds.items():
                if name not in run_dirs and (run_dir := _checkpointed_run(cmd, 1)):
                    sig, to_group, _ = SCENARIOS[name]
                    if name in OWN_SERVER:
                        _check_server(cmd)
                    cmd.signal(sig, to_group)
                    run_dirs[name] = run_dir
            time.sleep(0.05)
        for name, cmd in cmds.items():
            results[name] = cmd.wait_gone()
    finally:
        for cmd in cmds.values():
            cmd.kill_leftovers()

    for name, cmd in cmds.items():
        _, _, code = SCENARIOS[name]
        took, gone = results[name]
        err = cmd.stderr
        assert cmd.proc.returncode == code, f"{name}:\n{err}"
        assert "Traceback" not in err, f"{name}:\n{err}"
        assert gone, f"{name}: left running: {_processes_with_home(cmd.home)}"
        print(f"{name}: exit {code} after {took:.1f} s")
        manifest = json.loads((run_dirs[name] / "manifest.json").read_text())
        assert manifest["status"] == "interrupted", name
        assert "train" not in manifest["stages"], name  # the signal landed inside training
        assert f"--resume {run_dirs[name]}" in err, name


def _interrupt_a_train_when(
    tmp_path: Path, sig: signal.Signals, ready: Callable[[Command], bool], timeout: float
) -> tuple[Command, float, bool]:
    """Start a tiny `flows.train`, send `sig` to its group once `ready(cmd)`, wait for its end:
    (the command, seconds from the signal to its exit, whether nothing is left running)."""
    cmd = _start("flows.train", [*TINY, "--output-dir", str(tmp_path / "runs")], tmp_path / "c")
    try:
        assert _wait_until(lambda: ready(cmd), timeout), cmd.stderr
        cmd.signal(sig, to_group=True)
        took, gone = cmd.wait_gone()
    finally:
        cmd.kill_leftovers()
    return cmd, took, gone


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_while_prefect_imports_is_one_line(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """The first seconds, before anything started: no import traceback, exit 130/143."""
    # The flags are checked first (milliseconds), then Prefect imports for seconds;
    # orjson is one of the first compiled modules it loads (nothing before imports it).
    cmd, took, gone = _interrupt_a_train_when(
        tmp_path, sig, lambda c: "/orjson/" in _mapped(c.proc.pid), 60
    )
    err = cmd.stderr
    assert cmd.proc.returncode == 128 + sig, err
    assert "Traceback" not in err and err.strip() in ("interrupted", "terminated"), err
    assert gone
    print(f"{sig.name} while importing: exit {128 + sig} after {took:.1f} s")


def _mapped(pid: int) -> str:
    """The files the process has mapped: compiled modules once imported (Linux /proc)."""
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


def _watchdog_started(cmd: Command) -> bool:
    return any(
        b"seedtrail.prefect.watchdog" in Path(f"/proc/{p}/cmdline").read_bytes()
        for p in _processes_with_home(cmd.home)
        if Path(f"/proc/{p}").exists()
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_while_the_server_starts_ends_in_seconds(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """It waited 14.5-15.2 s for TensorFlow's background import; nothing is left running."""
    cmd, took, gone = _interrupt_a_train_when(tmp_path, sig, _watchdog_started, 120)
    err = cmd.stderr
    assert cmd.proc.returncode == 128 + sig, err
    assert "Traceback" not in err, err
    assert gone, f"left running: {_processes_with_home(cmd.home)}"
    assert not any((tmp_path / "runs").glob("*/manifest.json"))  # no run began
    print(f"{sig.name} while the server starts: exit {128 + sig} after {took:.1f} s")
