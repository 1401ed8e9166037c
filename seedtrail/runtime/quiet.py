"""Keep TensorFlow's and absl's start-up chatter out of the user's terminal.

TF logs through absl before absl is initialised, so TF_CPP_MIN_LOG_LEVEL does
not silence everything: the import runs with file descriptor 2 pointed at a
temporary file. Set SEEDTRAIL_DEBUG=1 to see everything.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from types import ModuleType

from seedtrail.core import collector

_lock = threading.Lock()
_terminal: int | None = None  # the real fd 2 while an import points fd 2 at a temp file
# Held while fd 2 is switched, so that `say` never writes into the temp file.
_fd_switch = threading.Lock()
# Set from the moment a background import is asked for until it ends. `_lock` alone
# left a gap: a Ctrl-C after the thread started but before it took `_lock` read "not
# importing", and the command then waited for the whole import (CI: over 60 s on a
# loaded machine, and its "interrupted" line sat in the temp file all that time).
_background = threading.Event()


def debug_enabled() -> bool:
    return os.environ.get("SEEDTRAIL_DEBUG", "") not in ("", "0")


def set_quiet_environment() -> None:
    """Environment variables read by TF/absl/albumentations at import; call before importing."""
    if debug_enabled():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    # albumentations 2.0.x checks PyPI for updates at import; never phone home.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    warnings.filterwarnings("ignore", module=r"(keras|tensorflow|albumentations)(\.|$)")


# Lines TF/absl print at import that tell a user nothing actionable.
_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|[IWEF]\d{4} \S+\s+\d+ \S+:\d+\]"
    rb"|To enable the following instructions:)"
)


@contextlib.contextmanager
def stderr_filtered() -> Iterator[None]:
    """Point fd 2 (C++ writes too) at a temp file; afterwards replay all but the noise.

    Whatever else wrote to stderr meanwhile (other threads, e.g. Prefect) is kept;
    if the block fails, everything is replayed.
    """
    if debug_enabled():
        yield
        return
    global _terminal
    sys.stderr.flush()
    saved = os.dup(2)
    failed = False
    with tempfile.TemporaryFile(mode="w+b") as sink:
        with _fd_switch:
            os.dup2(sink.fileno(), 2)
            _terminal = saved
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            with _fd_switch:
                os.dup2(saved, 2)
                _terminal = None
                os.close(saved)
            sink.seek(0)
            lines = sink.read().splitlines(keepends=True)
            kept = b"".join(ln for ln in lines if failed or not _NOISE.match(ln))
            if kept:
                os.write(2, kept)


@contextlib.contextmanager
def _without_jax_for_tflite() -> Iterator[None]:
    """TensorFlow 2.21's `import tensorflow` imports JAX where it is installed, for TF
    Lite's JAX converter alone (tensorflow/lite/python/util.py: `try: from jax import jit`):
    0.3-0.7 CPU s of every TensorFlow process, measured on this project's 2-core Zen 3. Under
    the TensorFlow backend nothing here uses it, so the import sees no JAX (`None` in
    sys.modules is Python's documented "not importable"), and JAX imports normally
    afterwards. Under the JAX backend, JAX is imported as before.
    tests/test_backends.py checks both."""
    from seedtrail.runtime.backends import KERAS_ENV, TENSORFLOW

    block = os.environ.get(KERAS_ENV, TENSORFLOW) == TENSORFLOW and "jax" not in sys.modules
    if block:
        sys.modules["jax"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if block and sys.modules.get("jax", 0) is None:
            del sys.modules["jax"]


def import_tensorflow() -> ModuleType:
    """Import TensorFlow (and Keras) once, without the start-up noise."""
    with _lock:
        if "tensorflow" in sys.modules and "keras" in sys.modules:
            return sys.modules["tensorflow"]
        set_quiet_environment()
        with stderr_filtered(), _without_jax_for_tflite(), collector.imports_frozen():
            import keras  # noqa: F401
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")
            try:
                import absl.logging

                absl.logging.set_verbosity(absl.logging.ERROR)
            except ImportError:
                pass
        return tf


def import_in_background(target: Callable[[], object]) -> threading.Thread:
    """Run `target` (an import of TensorFlow) in a daemon thread; `importing()` is true
    from now until it returns.

    The thread blocks Ctrl-C and SIGTERM: they are the main thread's to handle. The kernel
    gives a process's signal to any thread that does not block it, and the main thread
    blocks every signal while `subprocess` vforks (CPython's _posixsubprocess.c), as when
    the temporary server starts during this import: the signal could then land in
    TensorFlow's C++ start-up code, which is not written for an interrupted call. (A
    SIGTERM sent then left a command blocked for over 60 s once in ~30 suites; this is
    the likely cause, not a proven one: tests/test_signals.py dumps the stacks if it
    happens again.) Threads TensorFlow starts during its import inherit the block.
    """

    def run() -> None:
        if hasattr(signal, "pthread_sigmask"):  # POSIX; elsewhere signals go to the main thread
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            target()
        finally:
            _background.clear()

    _background.set()
    thread = threading.Thread(target=run, name="seedtrail-tf-import", daemon=True)
    try:
        thread.start()
    except BaseException:
        _background.clear()
        raise
    return thread


def importing() -> bool:
    """Whether a TensorFlow import is asked for or in progress (in a background thread)."""
    return _background.is_set() or _lock.locked()


def say(text: str) -> None:
    """Write to the terminal's stderr now, also while an import filters fd 2."""
    sys.stderr.flush()
    with _fd_switch:
        os.write(2 if _terminal is None else _terminal, text.encode())


def settle(timeout_s: float = 120.0) -> None:
    """Wait for a TensorFlow import in progress (another thread) to finish.

    While it runs, fd 2 points at a temporary file: anything written to stderr then,
    an error line included, reaches the terminal only when the import restores fd 2.
    A process must not exit before that, or those lines are lost.
    """
    if _lock.acquire(timeout=timeout_s):
        _lock.release()
