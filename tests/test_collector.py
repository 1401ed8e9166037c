"""The garbage collector around a command's imports (seedtrail/core/collector.py): paused
while they run, their objects frozen after, and always enabled again for the run itself."""

from __future__ import annotations

import gc
import signal
import sys
import threading
import weakref
from collections.abc import Iterator
from types import ModuleType

import pytest

from seedtrail.core import collector


@pytest.fixture(autouse=True)
def _restore_collector() -> Iterator[None]:
    """Each test starts with the collector enabled and nothing frozen, and leaves it so."""
    enabled = gc.isenabled()
    gc.unfreeze()
    gc.enable()
    yield
    assert collector._paused == 0, "a test left a pause open"
    gc.unfreeze()
    (gc.enable if enabled else gc.disable)()


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_imports_frozen_pauses_then_freezes_what_was_created_and_enables_again() -> None:
    before = gc.get_freeze_count()
    with collector.imports_frozen():
        assert not gc.isenabled()
        made = [Cycle() for _ in range(1000)]  # what an import leaves: long-lived objects
        garbage = Cycle()
        ref = weakref.ref(garbage)
        del garbage
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + len(made)
    gc.collect()
    assert ref() is not None, "frozen objects are out of the collector's way"
    gc.unfreeze()  # the control: unfrozen, the same cycle is collected
    gc.collect()
    assert ref() is None


def test_collection_still_runs_for_what_is_made_after() -> None:
    with collector.imports_frozen():
        pass
    Cycle()  # unreachable at once: only the collector can free a cycle
    assert gc.collect() >= 1


def test_a_collector_the_caller_disabled_stays_disabled() -> None:
    gc.disable()
    with collector.imports_frozen():
        pass
    assert not gc.isenabled()


def test_nested_and_cross_thread_pauses_enable_once_the_last_ends() -> None:
    collector.pause()  # check_early's pause (the main thread)
    started, finish = threading.Event(), threading.Event()

    def background_import() -> None:  # TensorFlow's import in its thread
        with collector.imports_frozen():
            started.set()
            finish.wait(10)

    thread = threading.Thread(target=background_import)
    thread.start()
    started.wait(10)
    collector.resume()  # run_cli: the main thread's imports are done
    assert not gc.isenabled(), "enabled while the background import still runs"
    finish.set()
    thread.join(10)
    assert gc.isenabled()


def test_resume_without_a_pause_changes_nothing() -> None:
    before = gc.get_freeze_count()
    collector.resume()
    assert gc.isenabled() and gc.get_freeze_count() == before


def test_a_command_runs_with_the_collector_enabled_and_exits_frozen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """check_early pauses it for the imports; run_cli enables it before the command's work
    and freezes everything just before the exit."""
    from seedtrail.cli import main as cli

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _check_early_then_run_cli(cli, monkeypatch)
    finally:  # both calls install signal handlers
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _check_early_then_run_cli(cli: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, bool] = {}
    refs: list[weakref.ref] = []
    monkeypatch.setattr(sys, "argv", ["flows.train"])
    cli.check_early(lambda argv: None)
    seen["imports"] = gc.isenabled()

    def main(argv: list[str]) -> int:
        seen["run"] = gc.isenabled()
        refs.append(weakref.ref(Cycle()))  # the run's garbage, left for the exit
        return 0

    with pytest.raises(SystemExit) as exit_:
        cli.run_cli(main, [], handle_signals=False)
    assert exit_.value.code == 0
    assert seen == {"imports": False, "run": True}
    assert gc.isenabled()
    gc.collect()
    assert refs[0]() is not None, "frozen before the exit: the exit's collection skips it"
