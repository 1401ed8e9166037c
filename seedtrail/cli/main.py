"""Shared command-line plumbing: quiet start, one line per bad-input problem, exit codes."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

from seedtrail.core import collector
from seedtrail.core.errors import InputError, RunFailed
from seedtrail.prefect.environment import environment_defaults
from seedtrail.prefect.server import ServerDidNotStart, stop_servers
from seedtrail.prefect.signals import (
    exit_quietly_on_interrupt,
    interrupt_exit_code,
    interrupt_signal,
    interruption_types,
    restore_interrupts,
)
from seedtrail.runtime.quiet import importing, say, set_quiet_environment, settle

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM  # 130, 143


def report_input_error(err: InputError) -> int:
    for line in err.problems:
        print(f"error: {line}", file=sys.stderr)
    frames = getattr(
        err, "frames", ""
    )  # UserCodeError: the user's own frames, as Python shows them
    if frames:
        print(frames, file=sys.stderr)
    return EXIT_USAGE


def check_early(parse: Callable[[list[str]], object]) -> None:
    """Check a command's flags before it imports Prefect and its flow (seconds here).

    A command calls this first thing under `if __name__ == "__main__":`, with the same
    light parser its `main` uses, so a mistyped flag is one line and exit 2 at once;
    `--help` prints and exits 0. Valid flags are parsed again by `main` (milliseconds).
    From here until `run_cli`, Ctrl-C or SIGTERM exits at once with one line (130/143):
    nothing is started yet, and Prefect's imports would print a long traceback.
    """
    exit_quietly_on_interrupt()
    # From here to run_cli the command only imports (Prefect, its flow): no collections
    # meanwhile, and run_cli freezes what they created (seedtrail/core/collector.py).
    collector.pause()
    try:
        parse(sys.argv[1:])
    except InputError as err:
        sys.exit(report_input_error(err))


def run_cli(
    main: Callable[[list[str]], int], argv: list[str] | None = None, *, handle_signals: bool = True
) -> None:
    """Run `main(argv)` and exit with its status; bad input is one line each and exit 2.

    With `handle_signals`, Ctrl-C (also when a terminal sends it to the whole process
    group) and SIGTERM end the command the same way: the run is marked interrupted,
    the temporary server (seedtrail/prefect/server.py) is stopped, exit 130 (SIGINT) or
    143 (SIGTERM).
    """
    collector.resume()  # the pause check_early began, if any
    environment_defaults()
    set_quiet_environment()
    if handle_signals:
        restore_interrupts()
    else:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    args = sys.argv[1:] if argv is None else argv
    try:
        code = main(args)
    except InputError as err:
        code = report_input_error(err)
    except interruption_types() as err:
        word = "terminated" if interrupt_signal(err) == signal.SIGTERM else "interrupted"
        code = interrupt_exit_code(err)
        if importing():
            # Interrupted before the run began (e.g. while the server starts): nothing to
            # wait for but TensorFlow's import in the background, which took 10-15 s.
            say(f"\n{word}\n")
            stop_servers()
            os._exit(code)
        print(f"\n{word}", file=sys.stderr)
    except RunFailed as err:  # e.g. a full disk: the run is marked failed
        print(f"error: {err}", file=sys.stderr)
        code = EXIT_FAILED
    except ServerDidNotStart as err:
        print(f"error: {err}", file=sys.stderr)
        code = EXIT_FAILED
    finally:
        settle()  # a background TensorFlow import holds stderr until it is done
    collector.before_exit()  # ~1 CPU s less at exit once TensorFlow is imported
    sys.exit(code)
