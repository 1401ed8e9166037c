"""Shared command-line plumbing: quiet start, one line per bad-input problem, exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable

from seedtrail.errors import InputError
from seedtrail.prefect_compat import patient_startup, startup_failure
from seedtrail.quiet import set_quiet_environment, settle

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def report_input_error(err: InputError) -> int:
    for line in err.problems:
        print(f"error: {line}", file=sys.stderr)
    return EXIT_USAGE


def run_cli(main: Callable[[list[str]], int], argv: list[str] | None = None) -> None:
    """Run `main(argv)` and exit with its status; bad input is one line each and exit 2."""
    set_quiet_environment()
    args = sys.argv[1:] if argv is None else argv
    with patient_startup() as timeout_s:
        try:
            code = main(args)
        except InputError as err:
            code = report_input_error(err)
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            code = EXIT_INTERRUPTED
        except RuntimeError as err:
            line = startup_failure(err, timeout_s)
            if line is None:
                raise
            print(f"error: {line}", file=sys.stderr)
            code = EXIT_FAILED
        finally:
            settle()  # a background TensorFlow import holds stderr until it is done
    sys.exit(code)
