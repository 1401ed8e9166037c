"""seedtrail/prefect/signals.py and environment.py: SIGTERM like Ctrl-C; Prefect's environment."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from seedtrail.prefect.environment import environment_defaults, use_api_url
from seedtrail.prefect.signals import (
    Terminated,
    interrupt_exit_code,
    interrupt_on_sigterm,
    interruption_types,
)


def test_sigterm_raises_in_the_main_thread_and_exits_143() -> None:
    before = signal.getsignal(signal.SIGTERM)
    try:
        interrupt_on_sigterm()
        with pytest.raises(Terminated) as caught:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):  # delivered at the next bytecode boundary
                pass
    finally:
        signal.signal(signal.SIGTERM, before)
    assert isinstance(caught.value, KeyboardInterrupt)  # every `except KeyboardInterrupt` cleans up
    assert interrupt_exit_code(caught.value) == 143
    assert interrupt_exit_code(KeyboardInterrupt()) == 130


def test_prefects_termination_signal_inside_a_flow_counts_as_an_interruption() -> None:
    """Prefect swaps in its own SIGTERM handler during a flow run and raises TerminationSignal
    (not a KeyboardInterrupt); it carries the signal number as `.signal`."""
    from prefect.exceptions import TerminationSignal

    err = TerminationSignal(signal=signal.SIGTERM)
    assert not isinstance(err, KeyboardInterrupt)
    assert isinstance(err, interruption_types())
    assert interrupt_exit_code(err) == 143


def test_telemetry_defaults_never_override_the_user() -> None:
    env = {"DO_NOT_TRACK": "0"}
    environment_defaults(env)
    assert env == {"DO_NOT_TRACK": "0", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def test_an_api_url_set_at_run_time_reaches_every_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import get_current_settings

    from seedtrail.prefect.workarounds import reload_prefect_settings

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    seen: list[str | None] = []
    try:
        use_api_url("http://127.0.0.1:9/api")
        thread = threading.Thread(target=lambda: seen.append(get_current_settings().api.url))
        thread.start()
        thread.join()
    finally:
        monkeypatch.delenv("PREFECT_API_URL", raising=False)
        reload_prefect_settings()
    assert seen == ["http://127.0.0.1:9/api"]
