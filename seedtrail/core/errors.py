"""Errors that mean "the user's input is wrong", reported as one line each, exit status 2."""

from __future__ import annotations

from collections.abc import Sequence


class InputError(Exception):
    """Bad input: each problem is one line that names the field or file at fault."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


def retry_unless_input_error(task: object, task_run: object, state: object) -> bool:
    """Prefect retry condition: retry transient failures (I/O), never bad input or a full disk."""
    return not isinstance(getattr(state, "data", None), InputError | RunFailed)


class UserCodeError(InputError):
    """The user's code (model.builder, data.loader) raised: one line naming the setting,
    and the frames of the user's own files (seedtrail's, Prefect's and TensorFlow's left out)."""

    def __init__(self, problems: str | Sequence[str], frames: str = "") -> None:
        super().__init__(problems)
        self.frames = frames

    def __reduce__(self) -> tuple[type, tuple[list[str], str]]:  # pickled in a Prefect state
        return (type(self), (self.problems, self.frames))


class RunFailed(Exception):
    """A run that cannot go on for a reason one line says (a full disk): exit status 1."""
