"""`python -m seedtrail.prefect.watchdog -- COMMAND...`: run COMMAND for as long as our parent lives.

The parent (a seedtrail command starting its temporary Prefect server) gives us, as
stdin, the read end of a pipe whose only write end it keeps. However the parent ends,
`kill -9` included, the kernel closes that end and our read returns EOF at once: we
stop COMMAND (SIGTERM, SIGKILL after a grace period) and exit. Pipes behave so on
Linux and macOS alike. On Linux COMMAND also gets PR_SET_PDEATHSIG, so that a killed
watchdog takes it along too.

Standard library only, and nothing imported from seedtrail: it starts in ~50 ms.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading

GRACE_S = 5.0  # SIGTERM, then SIGKILL: uvicorn's graceful stop takes well under a second


def _die_with_watchdog() -> None:
    """In COMMAND's process, before exec: SIGTERM when the watchdog dies (Linux only).

    Set in the child itself: the flag belongs to the process that forks it (this
    single-threaded watchdog), is cleared on setuid, and is not inherited by forks.
    """
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _stop(child: subprocess.Popen) -> int:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return child.returncode


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") + 1 >= len(argv):
        print("usage: python -m seedtrail.prefect.watchdog -- COMMAND...", file=sys.stderr)
        return 2
    command = argv[argv.index("--") + 1 :]
    child = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_watchdog if sys.platform.startswith("linux") else None,
    )
    # The command ends on its own (e.g. its port was taken): we end with its status.
    threading.Thread(target=lambda: os._exit(child.wait() & 0xFF), daemon=True).start()
    # SIGTERM/SIGINT to the watchdog itself: stop the command first.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: os._exit(_stop(child) & 0xFF))
    with contextlib.suppress(OSError):
        while os.read(0, 4096):  # the parent never writes; only EOF matters
            pass
    _stop(child)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
