"""Errors that mean "the user's input is wrong", reported as one line each, exit status 2."""

from __future__ import annotations

from collections.abc import Sequence


class InputError(Exception):
    """Bad input: each problem is one line that names the field or file at fault."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


def retry_unless_input_error(task: object, task_run: object, state: object) -> bool:
    """Prefect retry condition: retry transient failures (I/O), never bad input."""
    return not isinstance(getattr(state, "data", None), InputError)
