"""seedtrail/runtime/quiet.py: a background import seen from its start; `say` reaches the terminal.

CI once waited over 60 s after a Ctrl-C sent while the temporary server started: the
signal came after the import thread was started but before it took the import lock,
so the command read "not importing" and sat out the whole TensorFlow import.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from seedtrail.runtime import quiet


def test_an_import_asked_for_counts_as_importing_before_it_takes_the_lock() -> None:
    started, release = threading.Event(), threading.Event()

    def slow_import() -> None:
        started.set()
        release.wait(10)  # never takes quiet._lock: the gap CI fell into

    thread = quiet.import_in_background(slow_import)
    try:
        started.wait(10)
        assert not quiet._lock.locked()
        assert quiet.importing()
    finally:
        release.set()
        thread.join(10)
    assert not quiet.importing()


def test_the_import_thread_never_takes_ctrl_c_or_sigterm() -> None:
    """They are the main thread's (quiet.import_in_background): the kernel gives a
    process's signal to any thread that does not block it."""
    if not hasattr(signal, "pthread_sigmask"):
        pytest.skip("no pthread_sigmask on this platform")
    seen: list[set[int]] = []
    thread = quiet.import_in_background(
        lambda: seen.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
    )
    thread.join(10)
    assert {signal.SIGINT, signal.SIGTERM} <= seen[0]
    here = signal.pthread_sigmask(signal.SIG_BLOCK, [])  # this thread's mask: untouched
    assert signal.SIGINT not in here and signal.SIGTERM not in here


def test_say_writes_to_the_terminal_while_an_import_holds_fd_2(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEEDTRAIL_DEBUG", raising=False)
    with quiet.stderr_filtered():
        os.write(2, b"written during the import\n")  # held back, replayed at the end
        quiet.say("said now\n")
    err = capfd.readouterr().err
    assert err.index("said now") < err.index("written during the import"), err


def test_ctrl_c_while_an_import_is_pending_exits_130_at_once() -> None:
    """run_cli's early exit, in a process of its own (it ends with os._exit)."""
    script = textwrap.dedent(
        """
        import time
        from seedtrail.cli.main import run_cli
        from seedtrail.runtime.quiet import import_in_background

        def main(argv):
            import_in_background(lambda: time.sleep(600))  # an import that takes forever
            raise KeyboardInterrupt

        run_cli(main, [])
        """
    )
    # Waiting for the import (600 s) instead of leaving raises TimeoutExpired here.
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == "interrupted", done.stderr
