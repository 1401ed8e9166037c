"""How long a temporary Prefect server outlives its command after `kill -9` (issue 25).

    python -m benchmarks.server_lifetime [--repeats 5]

Each repeat: a process starts a temporary server (seedtrail.prefect.server) and waits
until it is healthy; the process is killed with SIGKILL; we time until nothing answers on
the server's port and no process of it is left (watchdog and server). Linux (/proc).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHILD = (
    "from seedtrail.prefect.server import start_server\n"
    "import time\n"
    "s = start_server(); s.wait_healthy(300)\n"
    "print(s.url, s.proc.pid, flush=True)\n"
    "time.sleep(600)\n"
)


def _with_home(home: Path) -> list[int]:
    marker = f"PREFECT_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            pass
    return found


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1):
            return True
    except OSError:
        return False


def once(home: Path) -> tuple[float, float]:
    """(s until the port stops answering, s until no process is left) after kill -9."""
    env = {**os.environ, "PREFECT_HOME": str(home), "PYTHONPATH": str(Path.cwd())}
    env.pop("PREFECT_API_URL", None)
    parent = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, text=True
    )
    url = parent.stdout.readline().split()[0]
    os.kill(parent.pid, signal.SIGKILL)
    killed = time.monotonic()
    parent.wait()
    port_closed = None
    while True:
        now = time.monotonic() - killed
        if port_closed is None and not _answers(url):
            port_closed = now
        if port_closed is not None and not _with_home(home):
            return port_closed, now
        if now > 60:
            raise SystemExit(f"still running after 60 s: {_with_home(home)}")
        time.sleep(0.01)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [once(Path(tmp) / "home") for _ in range(args.repeats)]
    for name, values in (("port closed", [r[0] for r in results]),
                         ("no process left", [r[1] for r in results])):  # fmt: skip
        print(f"{name}: median {statistics.median(values):.2f} s, "
              f"range {min(values):.2f}-{max(values):.2f} s over {len(values)} kills")  # fmt: skip


if __name__ == "__main__":
    main()
