"""The sweep's task runner: each run in a worker process, and stopping those workers on Ctrl-C.

TensorFlow's seeds and thread pools are process-wide, so runs must never share a process
as threads. The runner reloads a served or worker-run flow from its entrypoint, so a
runner set with `.with_options()` is lost there: the sweep flow declares this one in its
decorator. `max_tasks_per_child=1` gives each run a fresh process; Prefect's
ProcessPoolTaskRunner does not expose it, so this is a small `TaskRunner` of our own
(Prefect's public base class) on `ProcessPoolExecutor`. Workers talk to the API
themselves (they get this process's Prefect settings) and exit when the process that
started them is gone (`kill -9` of a sweep leaves none behind): worker.py.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from prefect.futures import PrefectConcurrentFuture, PrefectFuture
from prefect.task_runners import TaskRunner

from seedtrail.prefect import worker


def settings_environment() -> dict[str, str]:
    """This process's Prefect settings (its API URL above all) as environment variables.

    A flow run in a test or a served process may hold them in a settings context only.
    """
    from prefect.settings import get_current_settings

    return get_current_settings().to_environment_variables(exclude_unset=True)


def _unpickled(future: Future[bytes]) -> Future[Any]:
    """A future of the State that `future` returns pickled."""
    import cloudpickle

    out: Future[Any] = Future()

    def done(f: Future[bytes]) -> None:
        if f.cancelled():
            out.cancel()
            out.set_running_or_notify_cancel()
            return
        try:
            out.set_result(cloudpickle.loads(f.result()))
        except BaseException as err:
            out.set_exception(err)

    future.add_done_callback(done)
    return out


class ProcessTaskRunner(TaskRunner[PrefectConcurrentFuture[Any]]):
    """Tasks in worker processes: `max_workers` at once, each worker running at most
    `max_tasks_per_child` tasks (None: reused, as the CLI's `--workers` pool does)."""

    def __init__(self, max_workers: int = 1, max_tasks_per_child: int | None = 1) -> None:
        super().__init__()
        self.max_workers = max_workers
        self.max_tasks_per_child = max_tasks_per_child
        self.pool: ProcessPoolExecutor | None = None

    def duplicate(self) -> ProcessTaskRunner:
        return type(self)(self.max_workers, self.max_tasks_per_child)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProcessTaskRunner) and (
            other.max_workers,
            other.max_tasks_per_child,
        ) == (self.max_workers, self.max_tasks_per_child)

    __hash__ = None  # type: ignore[assignment]

    def __enter__(self) -> ProcessTaskRunner:
        super().__enter__()
        self.pool = ProcessPoolExecutor(
            max_workers=self.max_workers,
            mp_context=multiprocessing.get_context("spawn"),  # no TF state copied by fork
            initializer=worker.initialize,
            initargs=(os.getpid(), settings_environment()),
            max_tasks_per_child=self.max_tasks_per_child,
        )
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        super().__exit__(*exc)

    def stop_now(self) -> None:
        """Start nothing more: queued runs are cancelled (the running ones are left to
        `stop_local_workers`)."""
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def submit(
        self,
        task: Any,
        parameters: dict[str, Any],
        wait_for: Iterable[PrefectFuture[Any]] | None = None,
        dependencies: dict[str, Any] | None = None,
    ) -> PrefectConcurrentFuture[Any]:
        import cloudpickle
        from prefect.context import serialize_context
        from prefect.futures import wait
        from prefect.utilities.engine import resolve_inputs_sync

        if self.pool is None:
            raise RuntimeError("the task runner is not started")
        states = None
        if wait_for:
            waited = list(wait_for)
            wait(waited)
            states = [f.state for f in waited]
        task_run_id = uuid.uuid4()
        kwargs = {
            "task_run_id": task_run_id,
            "parameters": resolve_inputs_sync(parameters, return_data=True, max_depth=-1),
            "wait_for": states,
            "dependencies": dependencies,
        }
        payload = cloudpickle.dumps((task, kwargs, serialize_context()))
        future = self.pool.submit(worker.run, payload)
        return PrefectConcurrentFuture(task_run_id=task_run_id, wrapped_future=_unpickled(future))


def as_completed(futures: dict[int, Any], poll_s: float = 0.25) -> Iterator[tuple[int, Any]]:
    """(key, future) as each Prefect future finishes; polls so that Ctrl-C is seen at once.

    A blocking `future.result()` does not return to Python until the run ends, so
    Ctrl-C would wait for it.
    """
    pending = dict(futures)
    while pending:
        ready = [i for i, f in pending.items() if f.wrapped_future.done()]
        if not ready:
            time.sleep(poll_s)
        for i in ready:
            yield i, pending.pop(i)


def stop_local_workers(deadline_s: float = 10.0) -> None:
    """Terminate this process's pool workers; their unfinished runs are marked interrupted.

    The pool is told to start nothing more first: it queues a run ahead of its workers,
    and a worker started after the others were stopped would train it to the end while
    the sweep waits at exit. SIGTERM is sent once (a second one could land while a
    worker reports its interrupted run; the workers ignore SIGINT, see
    `ignore_sigint_in_worker`); what has not stopped after `deadline_s` is killed (its
    run then stays "running"). Safe to call again, e.g. outside the flow (no context).
    """
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()  # None outside the flow: then only the children remain
    runner = getattr(ctx, "task_runner", None)
    if isinstance(runner, ProcessTaskRunner):
        runner.stop_now()
    for child in multiprocessing.active_children():
        child.terminate()
    end = time.monotonic() + deadline_s
    while (children := multiprocessing.active_children()) and time.monotonic() < end:
        children[0].join(timeout=0.2)
    for child in multiprocessing.active_children():
        child.kill()
        child.join(timeout=5)  # reaped: nothing left for the interpreter's exit to wait on


def ignore_sigint_in_worker() -> None:
    """In a sweep worker: leave a terminal's Ctrl-C (sent to the whole group) to the sweep.

    A worker that acted on SIGINT while the sweep terminated it could be stopped half-way
    through sending its result, and the pool then hung at exit (2 of ~10 test runs).
    """
    with contextlib.suppress(ValueError):  # not this thread's to set (e.g. a Dask thread)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
