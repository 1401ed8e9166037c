"""seedtrail/prefect/runner.py and worker.py: the sweep's runs in worker processes."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import Future
from pathlib import Path

import pytest
from prefect import flow, task

from seedtrail.prefect.runner import ProcessTaskRunner, as_completed, stop_local_workers
from tests.conftest import ROOT


def test_pool_futures_are_yielded_as_they_finish() -> None:
    class PrefectFuture:  # what Prefect's futures expose
        def __init__(self) -> None:
            self.wrapped_future: Future = Future()

    a, b = PrefectFuture(), PrefectFuture()
    b.wrapped_future.set_result("b")
    gen = as_completed({0: a, 1: b}, poll_s=0.001)
    assert next(gen) == (1, b)
    a.wrapped_future.set_result("a")
    assert next(gen) == (0, a)


def _ignore_sigterm_and_wait() -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)


def test_stop_local_workers_kills_a_worker_that_ignores_sigterm() -> None:
    ctx = multiprocessing.get_context("fork")
    stubborn = ctx.Process(target=_ignore_sigterm_and_wait, daemon=True)
    stubborn.start()
    time.sleep(0.2)  # let it install its handler (no other sync needed: it only waits)
    stop_local_workers(deadline_s=1.0)  # outside a flow: children only
    assert not stubborn.is_alive()
    assert stubborn.exitcode == -9  # killed after the deadline


@task
def _where() -> int:
    return os.getpid()


@flow(task_runner=ProcessTaskRunner(max_workers=1, max_tasks_per_child=1))
def _two_runs() -> list[int]:
    futures = [_where.submit() for _ in range(2)]
    return [f.result() for f in futures]


@pytest.mark.slow
def test_each_run_gets_a_fresh_worker_process(prefect_server: None) -> None:
    first, second = _two_runs()
    assert len({first, second, os.getpid()}) == 3


@pytest.mark.slow
def test_a_worker_leaves_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    """`kill -9` of a sweep: its workers go too, they do not train on for nobody."""
    script = textwrap.dedent("""
        import multiprocessing, sys, time
        from concurrent.futures import ProcessPoolExecutor
        from seedtrail.prefect import worker
        import os
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=worker.initialize, initargs=(os.getpid(), {}))
        print(pool.submit(os.getpid).result(), flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        child = int(parent.stdout.readline())
        os.kill(parent.pid, 9)
        parent.wait()
        deadline = time.monotonic() + 30
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the worker outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
