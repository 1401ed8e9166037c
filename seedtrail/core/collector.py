"""Python's cyclic garbage collector around a command's big imports: paused while they
run, what they created frozen after (`gc.freeze()`, public since Python 3.7).

TensorFlow, Keras, Prefect and their dependencies create millions of long-lived objects
(modules, classes, functions), none of them ever garbage. Each full collection walks all
of them again: during the imports themselves (their allocations trigger collections) and
at the interpreter's exit (it collects every tracked object once more). Measured on this
project's 2-core Zen 3, a tiny `python -m flows.train` spent 2.2 CPU s of its ~15 in
collections, most of them full ones during TensorFlow's import, and ~1 CPU s at exit;
with this module it needs about 3 CPU s less (medians 15.9 -> 13.0), with the same bytes
(docs/contributing.md).

Frozen objects are still freed by reference counting; only cyclic garbage created while
the collector is paused is kept (seconds of imports, bounded). Nothing here changes what
a run computes: the collector frees memory, it never touches a value.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_paused = 0  # imports in progress (any thread) that paused the collector
_resume = False  # whether the collector was enabled when the first of them began


def pause() -> None:
    """Pause the collector for imports (nested and cross-thread pauses count)."""
    global _paused, _resume
    with _lock:
        if _paused == 0:
            _resume = gc.isenabled()
            gc.disable()
        _paused += 1


def resume() -> None:
    """End one pause: freeze what exists now; the last pause re-enables the collector (if
    it was enabled before the first). Without a pause in progress, nothing happens."""
    global _paused
    with _lock:
        if _paused == 0:
            return
        gc.freeze()
        _paused -= 1
        if _paused == 0 and _resume:
            gc.enable()


@contextlib.contextmanager
def imports_frozen() -> Iterator[None]:
    """`with imports_frozen(): import tensorflow`: no collection during the imports, and
    their objects out of every later collection's way."""
    pause()
    try:
        yield
    finally:
        resume()


def before_exit() -> None:
    """Call last, before `sys.exit`: the interpreter's exit then collects nothing it does
    not need to (files are closed, atexit handlers and `weakref.finalize` callbacks run as
    usual)."""
    gc.freeze()
