"""What the terminal and the flow-run logs leave out: one line per event, never Prefect's echo.

- Each stage logs its own line (seed, fingerprint, time); Prefect's per-task
  "Finished in state Completed()" lines would double them. Failures still show.
- Bad input found inside a stage (a user's model builder that breaks the contract) is
  one `error:` line from the CLI; Prefect would log the task's and the flow's traceback
  and failure lines for the same InputError first.
- A flow that fails on its parameters ends Failed with one line (`clean_failure`); a
  served or worker run's engine then raises the state's error once more and logs it with
  its traceback: that record is dropped, and an InputError's traceback is cut to its line.
"""

from __future__ import annotations

import logging
from typing import Any

from seedtrail.prefect.workarounds import ENGINE_EXITED, TASK_COMPLETED_PREFIX

_CLEAN_FAILURES: set[str] = set()  # messages flows of this process ended with


def _input_error(record: logging.LogRecord) -> BaseException | None:
    from seedtrail.core.errors import InputError, RunFailed

    err = record.exc_info[1] if record.exc_info else None
    return err if isinstance(err, InputError | RunFailed) else None


def _not_task_completed(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(TASK_COMPLETED_PREFIX)


def drop_task_completed_lines() -> None:
    """In the terminal and the flow-run logs (idempotent)."""
    logger = logging.getLogger("prefect.task_runs")
    if _not_task_completed not in logger.filters:
        logger.addFilter(_not_task_completed)


def _not_input_error(record: logging.LogRecord) -> bool:
    text = record.getMessage()
    # a flow that ended on bad input with one line: the CLI prints that line itself
    ended = any(message in text for message in _CLEAN_FAILURES)
    named = any(name in text for name in ("InputError", "UserCodeError", "RunFailed"))
    return _input_error(record) is None and not named and not ended


def drop_input_error_lines() -> None:
    """In the CLI's terminal: the `error:` line it prints is the only one about bad input."""
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logging.getLogger(name).addFilter(_not_input_error)


def _clean_input_errors(record: logging.LogRecord) -> bool:
    exc = _input_error(record)
    if exc is None:
        return True
    if record.getMessage().startswith(ENGINE_EXITED):
        return False  # the state and the flow's own error line already say it
    record.msg, record.args = f"{record.getMessage()}: {exc}", ()
    record.exc_info, record.exc_text = None, None
    return True


def quiet_input_error_tracebacks() -> None:
    """Bad input ends a flow run with its one line, never a traceback (idempotent)."""
    for name in ("prefect.flow_runs", "prefect.engine"):
        logger = logging.getLogger(name)
        if _clean_input_errors not in logger.filters:
            logger.addFilter(_clean_input_errors)


def clean_failure(message: str, error: BaseException | None = None) -> Any:
    """A Failed state with one line, as both its message and (raised on .result()) its error.

    With validate_parameters=True, parameters that fail validation (a cross-field rule the
    server's schema cannot express, e.g. split 0.5 + 0.45) fail the run inside Prefect's
    engine: ~15 lines of traceback and a state message with the exception's repr. Our
    flows validate their own parameters and end with this instead. Call it before logging
    the line: the CLI (drop_input_error_lines) then leaves the flow's lines about it out,
    as it prints `error: <line>` itself. `error`: the exception to raise instead of
    InputError(message) (a UserCodeError keeps the user's frames for the CLI to print).
    """
    from prefect.states import Failed

    from seedtrail.core.errors import InputError

    _CLEAN_FAILURES.add(message)
    return Failed(message=message, data=error if error is not None else InputError(message))
