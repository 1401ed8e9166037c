"""The Prefect (and coolname) internals seedtrail still relies on: each has no public route.

Checked against Prefect PREFECT_CHECKED (and coolname COOLNAME_CHECKED).
tests/test_workarounds.py fails with a message naming the item when an upgrade changes
one of them; `DeprecationWarning`s from `prefect.*` are errors in the tests, so a removal
announced by Prefect shows up before it lands.

Everything else in seedtrail.prefect uses Prefect's public API: the temporary server is
`prefect server start` (server.py), the sweep's runner a `TaskRunner` of our own
(runner.py).
"""

from __future__ import annotations

import functools

PREFECT_CHECKED = "3.9.1"
COOLNAME_CHECKED = "5.0.0"


def reload_prefect_settings() -> None:
    """Make Prefect's process-wide settings re-read the environment (PREFECT_API_URL).

    Prefect builds them once, at import; threads it starts later (log and event workers)
    see only those, not a `temporary_settings` context. Prefect itself calls this after
    its plugins changed the environment (prefect/__init__.py); it is not in the documented
    API.
    """
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()


@functools.cache
def coolname_words() -> frozenset[str]:
    """Every word of coolname's default word lists (the Prefect server's run names).

    coolname documents generating names, not its word lists: `coolname.data.config` is
    the package's data module.
    """
    from coolname.data import config

    words: set[str] = set()
    for entry in config.values():
        if entry.get("type") == "words":
            for w in entry["words"]:
                words.update(w.replace(" ", "-").split("-"))
    return frozenset(words)


# Prefect's log lines that the terminal leaves out (logs.py): their records carry nothing
# but the text to tell them apart from a stage's own lines on the same logger and level.
TASK_COMPLETED_PREFIX = "Finished in state Completed"  # prefect/task_engine.py
ENGINE_EXITED = "Engine execution exited with unexpected exception"  # prefect/flow_engine.py
