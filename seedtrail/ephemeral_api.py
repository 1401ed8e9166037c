"""The temporary Prefect API that `python -m flows.*` starts when no server is configured.

Prefect gives that server 20 s to answer. On an empty PREFECT_HOME it must first
create and migrate its SQLite database, and on 2 busy cores (TensorFlow importing
beside it, another job running) that took ~25 s here: a new user's very first
command failed with a timeout traceback. So, unless the user chose a limit
themselves (environment, profile or prefect.toml: theirs always wins), seedtrail
waits up to COLD_START_TIMEOUT_S. If it still fails, the user gets one line saying
what failed and what to do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

COLD_START_TIMEOUT_S = 180
_PREFECT_MESSAGE = "Timed out while attempting to connect to ephemeral Prefect API server"


@contextlib.contextmanager
def patient_startup() -> Iterator[int]:
    """Within this block, the temporary API may take COLD_START_TIMEOUT_S to start."""
    from prefect.settings import (
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        get_current_settings,
        temporary_settings,
    )

    ephemeral = get_current_settings().server.ephemeral
    if "startup_timeout_seconds" in ephemeral.model_fields_set:  # the user's own choice
        yield ephemeral.startup_timeout_seconds
        return
    with temporary_settings(
        {PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: COLD_START_TIMEOUT_S}
    ):
        yield COLD_START_TIMEOUT_S


def startup_failure(err: BaseException, timeout_s: int) -> str | None:
    """One line for a temporary API that did not start, or None for any other error."""
    text = str(err)
    if not isinstance(err, RuntimeError) or _PREFECT_MESSAGE not in text:
        return None
    exited = ""
    if "exited with code" in text:
        exited = (
            " (its process exited with code "
            + text.split("exited with code", 1)[1].split(".")[0].strip()
            + ")"
        )
    return (
        f"the temporary Prefect API did not start within {timeout_s} s{exited}. "
        "Start a server (`prefect server start`) and set "
        "PREFECT_API_URL=http://127.0.0.1:4200/api, or allow more time with "
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
    )
