"""`python -m tests.session_server OWNER_PID PORT`: the test session's one Prefect server.

The first pytest worker that needs a server starts this keeper (tests/conftest.py,
`prefect_api_url`), and every worker of the session uses its server. The server must
outlive the worker that started it (pytest-xdist ends each worker as soon as its own queue
is empty, while the others still run tests) and must not outlive the session. So the keeper
watches the process that owns the session (the xdist controller, or pytest itself without
xdist): it stops the server when that process sends it SIGTERM (at the session's end) or is
gone (pytest killed), and it ends itself when the server ends.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from seedtrail.prefect.server import server_command

POLL_S = 0.2
STOP_TIMEOUT_S = 20.0


def stat_fields(pid: int) -> list[str] | None:
    """`/proc/PID/stat` after the command name (field 3, the state, first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie, ended but not yet reaped, does not)."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def main(argv: list[str]) -> int:
    owner, port = int(argv[0]), int(argv[1])
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)  # before the server starts: no window left to orphan it
    server = subprocess.Popen(server_command(port))  # its output: this process's (a log file)
    # A terminal's Ctrl-C reaches the server itself (same process group), which stops;
    # the keeper then ends with it, without a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while not stopping and server.poll() is None and alive(owner):
        time.sleep(POLL_S)
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
