"""Each Prefect workaround in seedtrail/prefect_compat.py, pinned: if Prefect changes, a test here says so."""

from __future__ import annotations

import inspect
import logging
import os
import urllib.request
from pathlib import Path

import pytest

from seedtrail import prefect_compat
from seedtrail.deployments import load_flow
from settings.model import RunSettings, TrainingSettings


def test_train_flow_takes_every_setting_as_a_top_level_parameter() -> None:
    """Deployment parameters merge at the top level only: one parameter per section."""
    train = load_flow("flows/train.py:train_flow")
    params = list(inspect.signature(train.fn).parameters)
    assert params[: len(RunSettings.model_fields)] == list(RunSettings.model_fields)
    s = RunSettings(seed=5, training=TrainingSettings(epochs=3))
    assert prefect_compat.settings_from_parameters(prefect_compat.settings_parameters(s)) == s
    assert "training: Training." in (train.fn.__doc__ or "")  # the UI form's descriptions


def test_tagging_the_flow_run_is_a_no_op_outside_one() -> None:
    prefect_compat.tag_current_flow_run(prefect_compat.seed_tag(7))  # must not raise
    assert prefect_compat.seed_tag(7) == "seed:7"


def test_only_prefects_task_completed_lines_are_dropped() -> None:
    import prefect.task_engine

    # Prefect still words its per-task line this way (else the filter silently stops working).
    assert 'f"Finished in state {display_state}"' in inspect.getsource(prefect.task_engine)

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("prefect.task_runs", logging.INFO, "", 0, msg, None, None)

    keep = prefect_compat._not_task_completed
    assert not keep(record("Finished in state Completed()"))
    assert keep(record("Finished in state Failed('boom')"))
    assert keep(record("data        seed 1 fingerprint abc  0.01s"))


def test_input_errors_inside_a_stage_leave_only_our_one_line() -> None:
    from seedtrail.core.errors import InputError

    def record(msg: str, err: BaseException | None = None) -> logging.LogRecord:
        exc_info = (type(err), err, None) if err else None
        return logging.LogRecord("prefect.task_runs", logging.ERROR, "", 0, msg, None, exc_info)

    keep = prefect_compat._not_input_error
    bad = InputError("model.builder: x:y returned a str, not a keras.Model")
    assert not keep(record("Task run failed with exception: InputError('...')", bad))
    assert not keep(record("Finished in state Failed('... InputError: model.builder ...')"))
    assert keep(record("Task run failed with exception: OSError('disk')", OSError("disk")))
    assert keep(record("model       seed 1 fingerprint abc  0.01s"))


def test_pool_futures_are_yielded_as_they_finish() -> None:
    from concurrent.futures import Future

    class PrefectFuture:  # what Prefect's process-pool futures expose
        def __init__(self) -> None:
            self.wrapped_future: Future = Future()

    a, b = PrefectFuture(), PrefectFuture()
    b.wrapped_future.set_result("b")
    gen = prefect_compat.as_completed({0: a, 1: b}, poll_s=0.001)
    assert next(gen) == (1, b)
    a.wrapped_future.set_result("a")
    assert next(gen) == (0, a)


def test_an_api_url_set_at_run_time_reaches_every_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from prefect.context import refresh_global_settings_context
    from prefect.settings import get_current_settings

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    seen: list[str | None] = []
    try:
        prefect_compat.use_api_url("http://127.0.0.1:9/api")
        thread = threading.Thread(target=lambda: seen.append(get_current_settings().api.url))
        thread.start()
        thread.join()
    finally:
        monkeypatch.delenv("PREFECT_API_URL", raising=False)
        refresh_global_settings_context()
    assert seen == ["http://127.0.0.1:9/api"]


@pytest.mark.slow
def test_the_sweeps_temporary_server_runs_in_its_own_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C reaches the foreground process group; the sweep's server must not be in it."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    url = prefect_compat.start_detached_server()
    with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
        assert r.status == 200
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    pids = [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _listens(int(p.name), port)
    ]
    assert pids and all(os.getsid(pid) != os.getsid(0) for pid in pids)


def _listens(pid: int, port: int) -> bool:
    """Whether the process's command line names the port (Linux /proc)."""
    try:
        cmd = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"server" in cmd and str(port).encode() in cmd


# ---- 5. the commands' lazy temporary server is the same detached process -----------------------


def test_prefects_lazy_temporary_server_slot_takes_the_detached_one() -> None:
    """Prefect starts its temporary server through `SubprocessASGIServer()` (port None): the
    instance registered there is ours, and its process is the detached `prefect server start`."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    previous = SubprocessASGIServer._instances.pop(None, None)
    try:
        # With a server configured (as a test harness of this session may have done),
        # there is no temporary server to arrange: the slot stays empty.
        with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
            assert prefect_compat.detached_server() is None
            assert None not in SubprocessASGIServer._instances
        with temporary_settings(restore_defaults={PREFECT_API_URL}):
            ours = prefect_compat.detached_server()
        assert SubprocessASGIServer() is ours  # what Prefect's client calls
        assert not ours.running  # lazy: a command that fails on bad input starts nothing
    finally:
        SubprocessASGIServer._instances.pop(None, None)
        if previous is not None:
            SubprocessASGIServer._instances[None] = previous


# ---- 7. SIGTERM raises like Ctrl-C ---------------------------------------------------------------


def test_sigterm_raises_in_the_main_thread_and_exits_143() -> None:
    import signal

    before = signal.getsignal(signal.SIGTERM)
    try:
        prefect_compat.interrupt_on_sigterm()
        with pytest.raises(prefect_compat.Terminated) as caught:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):  # delivered at the next bytecode boundary
                pass
    finally:
        signal.signal(signal.SIGTERM, before)
    assert isinstance(caught.value, KeyboardInterrupt)  # every `except KeyboardInterrupt` cleans up
    assert prefect_compat.interrupt_exit_code(caught.value) == 143
    assert prefect_compat.interrupt_exit_code(KeyboardInterrupt()) == 130


def test_prefects_termination_signal_inside_a_flow_counts_as_an_interruption() -> None:
    """Prefect swaps in its own SIGTERM handler during a flow run and raises TerminationSignal
    (not a KeyboardInterrupt); it carries the signal number as `.signal`."""
    import signal

    from prefect.exceptions import TerminationSignal

    err = TerminationSignal(signal=signal.SIGTERM)
    assert not isinstance(err, KeyboardInterrupt)
    assert isinstance(err, prefect_compat.interruption_types())
    assert prefect_compat.interrupt_exit_code(err) == 143


# ---- 4. worker stop: terminate once, kill what does not stop ------------------------------------


def _ignore_sigterm_and_wait() -> None:
    import signal
    import time

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)


def test_stop_local_workers_kills_a_worker_that_ignores_sigterm() -> None:
    import multiprocessing
    import time

    ctx = multiprocessing.get_context("fork")
    stubborn = ctx.Process(target=_ignore_sigterm_and_wait, daemon=True)
    stubborn.start()
    time.sleep(0.2)  # let it install its handler (no other sync needed: it only waits)
    prefect_compat.stop_local_workers(deadline_s=1.0)  # outside a flow: children only
    assert not stubborn.is_alive()
    assert stubborn.exitcode == -9  # killed after the deadline


# ---- 8. telemetry off, unless the user chose otherwise ------------------------------------------


def test_telemetry_defaults_never_override_the_user() -> None:
    env = {"DO_NOT_TRACK": "0"}
    prefect_compat.environment_defaults(env)
    assert env == {"DO_NOT_TRACK": "0", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
