"""The temporary Prefect API server a command starts when none is configured.

`python -m flows.train` (and verify, compare, sweep) with no PREFECT_API_URL start one
`prefect server start` (the public CLI; services and UI off), point PREFECT_API_URL at
it, and stop it when they exit. Its lifetime is exactly the command's:

- **Ctrl-C does not reach it.** It runs in its own session: a terminal sends Ctrl-C to
  the whole foreground process group, and a server killed with it left the interrupted
  run retrying its last state updates for minutes (144 s, then httpx tracebacks).
- **It dies with the command, whatever kills the command** (`kill -9`, the OOM killer, a
  CI timeout). It runs under `seedtrail.prefect.watchdog`, which holds the read end of a
  pipe whose only write end this process keeps: when this process ends, however, the
  kernel closes it and the watchdog stops the server (measured: docs/deployment.md).
- **A server the user started is never touched**: with PREFECT_API_URL set (environment,
  profile or prefect.toml) nothing is started, and only our own child is ever stopped.

It is started only when a command is about to run its flow (`ensure_api`): a command that
stops on bad input starts none. A sweep shares one with its worker processes (one SQLite
writer); they inherit PREFECT_API_URL.

Nothing here imports Prefect at module level.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# Prefect gives its own temporary server 20 s. On an empty PREFECT_HOME the server must
# first create and migrate its SQLite database, and on 2 busy cores (TensorFlow importing
# beside it) that took ~25 s: a new user's very first command failed. We wait up to
# COLD_START_TIMEOUT_S unless the user chose a limit (Prefect's own setting for it,
# PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: theirs always wins).
COLD_START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 15.0  # the watchdog's own grace is 5 s

_ROOT = Path(__file__).resolve().parents[2]  # where `seedtrail` imports from


class ServerDidNotStart(RuntimeError):
    """The temporary server did not answer in time; `str()` is the one line for the user."""


@dataclass
class TemporaryServer:
    """A `prefect server start` under our watchdog; `stop()` or our death ends it."""

    url: str
    proc: subprocess.Popen  # the watchdog
    lifeline: int  # the pipe's write end: closing it stops the server
    log: IO[bytes]  # the server's output, read only to explain a failed start
    stopped: bool = field(default=False)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                exited = self.proc.poll()
                self.stop()
                raise ServerDidNotStart(_failure_line(timeout_s, exited, self._tail()))
            time.sleep(0.1)  # each wait returns to Python: Ctrl-C is seen at once

    def stop(self, wait: bool = True) -> None:
        """Close the lifeline; the watchdog stops the server. Safe to call again."""
        if not self.stopped:
            self.stopped = True
            os.close(self.lifeline)
        if wait:
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # the watchdog; its server has PDEATHSIG on Linux

    def _tail(self) -> str:
        try:
            self.log.seek(0)
            return self.log.read().decode(errors="replace")[-500:]
        except (OSError, ValueError):
            return ""


_servers: list[TemporaryServer] = []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(port: int) -> list[str]:
    """The public CLI: `prefect server start`, on loopback, without services (as Prefect's
    own temporary server runs)."""
    return [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
            "--port", str(port), "--no-services"]  # fmt: skip


def start_server() -> TemporaryServer:
    """Start a temporary server under the watchdog and return at once (not yet healthy)."""
    port = _free_port()
    read_end, write_end = os.pipe()  # neither inheritable: only the watchdog gets the read end
    env = {**os.environ, "PREFECT_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
    log = tempfile.TemporaryFile()  # noqa: SIM115 (kept open: read on a failed start)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "seedtrail.prefect.watchdog", "--", *server_command(port)],
            stdin=read_end, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # a terminal's Ctrl-C to the group does not reach it
        )  # fmt: skip
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    server = TemporaryServer(f"http://127.0.0.1:{port}/api", proc, write_end, log)
    _servers.append(server)
    return server


def stop_servers(wait: bool = True) -> None:
    """Stop every temporary server this process started (at exit, or before `os._exit`)."""
    for server in _servers:
        server.stop(wait=wait)


atexit.register(stop_servers)


def startup_timeout() -> int:
    """COLD_START_TIMEOUT_S, unless the user set Prefect's start-up limit themselves."""
    from prefect.settings import get_current_settings

    ephemeral = get_current_settings().server.ephemeral
    if "startup_timeout_seconds" in ephemeral.model_fields_set:  # the user's own choice
        return int(ephemeral.startup_timeout_seconds)
    return COLD_START_TIMEOUT_S


def _failure_line(timeout_s: float, exited: int | None, output: str) -> str:
    why = f" (its process exited with code {exited})" if exited is not None else ""
    last = output.strip().splitlines()[-1:] if output.strip() else []
    said = f"; it said: {last[0].strip()[:200]}" if last and exited is not None else ""
    return (
        f"the temporary Prefect API did not start within {timeout_s:g} s{why}{said}. "
        "Start a server (`prefect server start`) and set "
        "PREFECT_API_URL=http://127.0.0.1:4200/api, or allow more time with "
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
    )


def ensure_api() -> str:
    """The API URL to use: the configured one, else a temporary server's, started now.

    Call it right before a command runs its flow. The URL is set in the environment, so
    worker processes inherit it, and Prefect's process-wide settings are reloaded, so
    that its log and event threads use it too (without, they would start a second
    temporary server of their own).
    """
    from prefect.logging import get_logger
    from prefect.settings import get_current_settings

    from seedtrail.prefect.environment import use_api_url

    configured = get_current_settings().api.url
    if configured:
        return configured
    server = start_server()
    get_logger().info("Starting temporary server on %s", server.url.removesuffix("/api"))
    server.wait_healthy(startup_timeout())
    use_api_url(server.url)
    return server.url
