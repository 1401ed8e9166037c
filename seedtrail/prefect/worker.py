"""Inside a worker process of the sweep's task runner (runner.py).

No Prefect import at module level: the pool's initializer runs before a task is
unpickled, so the settings it sets in the environment are those Prefect reads at import
(threads included).
"""

from __future__ import annotations

import os
import threading
import time

from seedtrail.core import collector

PARENT_POLL_S = 0.5


def initialize(parent: int, environ: dict[str, str]) -> None:
    """Take the sweep's Prefect settings (its API above all), and leave with the sweep."""
    for key, value in environ.items():
        os.environ.setdefault(key, value)  # what the worker inherited wins, as in Prefect's

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)  # reparented: the sweep is gone (kill -9), and its API server with it

    threading.Thread(target=watch, name="seedtrail-parent-watch", daemon=True).start()
    # The first task imports Prefect and, unpickling, the flow's module: no collections
    # until then, and `run` freezes what they made (seedtrail/core/collector.py).
    collector.pause()


def run(payload: bytes) -> bytes:
    """Run one task here; its final State, pickled."""
    try:
        import cloudpickle
        from prefect.context import hydrated_context
        from prefect.events.worker import EventsWorker
        from prefect.task_engine import run_task_sync

        task, kwargs, context = cloudpickle.loads(payload)
    finally:
        # The initializer's pause ends with the first task; in a reused worker's later
        # tasks there is none, and this does nothing (a freeze there would keep the cyclic
        # garbage of the run before).
        collector.resume()
    with hydrated_context(context):
        state = run_task_sync(task, **kwargs, context=context, return_type="state")
    # Sent before the result (as Prefect's own process pool does): the run's last events
    # reach the API, and the worker's exit prints no "Still processing items" warning.
    EventsWorker.instance().wait_until_empty()
    return cloudpickle.dumps(state)
