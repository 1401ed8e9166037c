"""Ctrl-C and SIGTERM: one line, the run marked interrupted, exit 130 or 143, nothing left.

Python's default for SIGTERM (kill, systemd, Kubernetes) is to die at once: no `finally`,
no atexit. The run stayed "running", no resume hint was printed and the temporary server
was left running. SIGTERM now raises like Ctrl-C in the main thread. During a flow run
Prefect swaps in its own handler (raising its TerminationSignal) and, afterwards,
re-sends the signal to the handler it found: ours.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

INTERRUPTED_WORDS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: mark the run, clean up, exit 143."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def interrupt_on_sigterm() -> None:
    """Turn SIGTERM into an exception in the main thread, as SIGINT is."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def _leave_quietly(signum: int, frame: FrameType | None) -> None:
    print(f"\n{INTERRUPTED_WORDS.get(signum, 'interrupted')}", file=sys.stderr, flush=True)
    os._exit(128 + signum)


def exit_quietly_on_interrupt() -> None:
    """Until `run_cli` takes over: Ctrl-C or SIGTERM ends the command at once, in one line.

    A command imports Prefect and its flow for seconds before anything needs cleaning up;
    a KeyboardInterrupt there printed 15 to 40 lines of import traceback. Nothing is
    started yet (no server, no run directory), so leaving at once is the clean exit.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _leave_quietly)


def restore_interrupts() -> None:
    """Ctrl-C raises KeyboardInterrupt again, SIGTERM our Terminated."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupt_on_sigterm()


def interruption_types() -> tuple[type[BaseException], ...]:
    """What an interrupted run sees: Ctrl-C, our SIGTERM, or Prefect's SIGTERM inside a flow."""
    from prefect.exceptions import TerminationSignal

    return (KeyboardInterrupt, TerminationSignal)


def interrupt_signal(err: BaseException) -> int:
    """The signal behind an interruption: ours and Prefect's carry it; Ctrl-C is SIGINT."""
    signum = getattr(err, "signum", None) or getattr(err, "signal", None)
    return int(signum) if signum else int(signal.SIGINT)


def interrupt_exit_code(err: BaseException) -> int:
    """128 + the signal number, as a shell reports a process ended by that signal."""
    return 128 + interrupt_signal(err)


def exit_now(code: int) -> None:
    """Stop the temporary servers, flush, and leave without the interpreter's exit joins.

    After an interrupted sweep, exit could block on the process pool for good (about 1 in
    5 test runs under load: every run already marked, the server stopped, the process
    still there a minute later). Nothing of ours is left to write by then.
    """
    from seedtrail.prefect.server import stop_servers

    stop_servers()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
