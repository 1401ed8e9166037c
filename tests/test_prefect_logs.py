"""seedtrail/prefect/logs.py: the terminal shows our line per event, not Prefect's echo of it."""

from __future__ import annotations

import logging

from seedtrail.core.errors import InputError
from seedtrail.prefect.logs import _not_input_error, _not_task_completed


def _record(msg: str, err: BaseException | None = None, level: int = logging.INFO):
    exc_info = (type(err), err, None) if err else None
    return logging.LogRecord("prefect.task_runs", level, "", 0, msg, None, exc_info)


def test_only_prefects_task_completed_lines_are_dropped() -> None:
    keep = _not_task_completed
    assert not keep(_record("Finished in state Completed()"))
    assert keep(_record("Finished in state Failed('boom')", level=logging.ERROR))
    assert keep(_record("data        seed 1 fingerprint abc  0.01s"))


def test_input_errors_inside_a_stage_leave_only_our_one_line() -> None:
    keep = _not_input_error
    bad = InputError("model.builder: x:y returned a str, not a keras.Model")
    assert not keep(_record("Task run failed with exception: InputError('...')", bad))
    assert not keep(_record("Finished in state Failed('... InputError: model.builder ...')"))
    assert keep(_record("Task run failed with exception: OSError('disk')", OSError("disk")))
    assert keep(_record("model       seed 1 fingerprint abc  0.01s"))
