"""Shared command-line plumbing: quiet start, one line per bad-input problem, exit codes."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

from seedtrail.core.errors import InputError
from seedtrail.prefect_compat import (
    detached_server,
    environment_defaults,
    interrupt_exit_code,
    interrupt_on_sigterm,
    interrupt_signal,
    interruption_types,
    patient_startup,
    startup_failure,
)
from seedtrail.runtime.quiet import set_quiet_environment, settle

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM  # 130, 143


def report_input_error(err: InputError) -> int:
    for line in err.problems:
        print(f"error: {line}", file=sys.stderr)
    return EXIT_USAGE


def check_early(parse: Callable[[list[str]], object]) -> None:
    """Check a command's flags before it imports Prefect and its flow (seconds here).

    A command calls this first thing under `if __name__ == "__main__":`, with the same
    light parser its `main` uses, so a mistyped flag is one line and exit 2 at once;
    `--help` prints and exits 0. Valid flags are parsed again by `main` (milliseconds).
    """
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
    Prefect's temporary server is stopped, exit 130 (SIGINT) or 143 (SIGTERM).
    """
    environment_defaults()
    set_quiet_environment()
    if handle_signals:
        interrupt_on_sigterm()
        detached_server()
    args = sys.argv[1:] if argv is None else argv
    with patient_startup() as timeout_s:
        try:
            code = main(args)
        except InputError as err:
            code = report_input_error(err)
        except interruption_types() as err:
            word = "terminated" if interrupt_signal(err) == signal.SIGTERM else "interrupted"
            print(f"\n{word}", file=sys.stderr)
            code = interrupt_exit_code(err)
        except RuntimeError as err:
            line = startup_failure(err, timeout_s)
            if line is None:
                raise
            print(f"error: {line}", file=sys.stderr)
            code = EXIT_FAILED
        finally:
            settle()  # a background TensorFlow import holds stderr until it is done
    sys.exit(code)
