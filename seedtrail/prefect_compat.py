"""Every place where seedtrail works around a Prefect 3 behaviour, each with why.

Each workaround is pinned by a test (tests/test_prefect_compat.py; the start-up limit in
tests/test_first_run.py; 7-9, the served sweep's processes, typed run names and clean
failures, in tests/test_serve.py against a real server and tests/test_ui_views.py), so a
Prefect upgrade that changes the behaviour shows up there, not as a silent regression.

Nothing here imports Prefect at module level: `environment_defaults()` must run before
Prefect reads its settings (at `import prefect`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, MutableMapping
from types import FrameType
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field

from settings.model import RunSettings

# ---- 1. deployment parameters merge at the top level only ---------------------------------
# A custom run sending {"settings": {"seed": 5}} would replace the whole default settings
# object. So the train flow takes RunSettings' fields as its top-level parameters: a run
# sending only `seed` keeps every other section of the deployment.


def setting_annotation(name: str) -> Any:
    """The annotation of `RunSettings.<name>` with its bounds and form title, for a flow parameter.

    Prefect titles every parameter with its name ("data"): the form showed raw keys. A
    `json_schema_extra` title in the annotation replaces it ("Data").
    """
    info = RunSettings.model_fields[name]
    titled = Field(json_schema_extra={"title": info.title}) if info.title else None
    metadata = [*info.metadata, *([titled] if titled else [])]
    return Annotated[info.annotation, *metadata] if metadata else info.annotation


def with_settings_docstring(fn: Callable[..., Any] | None = None, /, **options: str) -> Any:
    """Append an `Args:` section: Prefect takes the UI form's descriptions from the docstring.

    Every setting's description, then `options` (run option -> description).
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        described = {n: str(i.description) for n, i in RunSettings.model_fields.items()}
        lines = [f"    {name}: {text}" for name, text in {**described, **options}.items()]
        fn.__doc__ = f"{(fn.__doc__ or '').strip()}\n\nArgs:\n" + "\n".join(lines) + "\n"
        return fn

    return decorate if fn is None else decorate(fn)


def settings_parameters(settings: RunSettings) -> dict[str, Any]:
    """The train flow's parameters for these settings (one per RunSettings field)."""
    return {name: getattr(settings, name) for name in RunSettings.model_fields}


def settings_from_parameters(parameters: dict[str, Any]) -> RunSettings:
    """RunSettings from the train flow's parameters (models or their JSON)."""
    return RunSettings.model_validate(
        {k: v for k, v in parameters.items() if k in RunSettings.model_fields}
    )


# ---- 2. a deployment run's tags are fixed when the server creates it ----------------------
# Deployment tags plus the caller's; the seed is only known from the parameters, so the
# running flow adds `seed:<n>` to itself to be found by seed in the UI.


def seed_tag(seed: int) -> str:
    return f"seed:{seed}"


def tag_current_flow_run(*new_tags: str) -> None:
    """Add tags to the running flow run (no-op outside one)."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(UUID(run_id)).tags
        if not set(new_tags) <= set(current):
            client.update_flow_run(UUID(run_id), tags=sorted({*current, *new_tags}))


# ---- 3. one "Finished in state Completed()" line per task on the terminal -----------------
# Each stage logs its own line (seed, fingerprint, time); Prefect's per-task completion
# lines would double them. Failures still show.
TASK_COMPLETED_PREFIX = "Finished in state Completed"


def _not_task_completed(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(TASK_COMPLETED_PREFIX)


def drop_task_completed_lines() -> None:
    logging.getLogger("prefect.task_runs").addFilter(_not_task_completed)


# ---- 3b. bad input found inside a stage is one line, not Prefect's tracebacks ------------
# A user's model builder is only called by the model stage (it needs TensorFlow); when it
# breaks the contract, the CLI prints one `error:` line. Prefect would log the task's and
# the flow's traceback and failure lines for the same InputError first.


def _not_input_error(record: logging.LogRecord) -> bool:
    from seedtrail.core.errors import InputError

    err = record.exc_info[1] if record.exc_info else None
    text = record.getMessage()
    # a flow that ended on bad input with one line (9. below): the CLI prints that line itself
    ended = any(message in text for message in _CLEAN_FAILURES)
    return not isinstance(err, InputError) and "InputError" not in text and not ended


def drop_input_error_lines() -> None:
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logging.getLogger(name).addFilter(_not_input_error)


# ---- 4. waiting on process-pool futures swallows Ctrl-C ----------------------------------
# A blocking `future.result()` in the sweep does not return to Python until the run ends,
# so Ctrl-C waits for it; and on Ctrl-C the pool would still wait for (or start) more runs.


def as_completed(futures: dict[int, Any], poll_s: float = 0.25) -> Iterator[tuple[int, Any]]:
    """(key, future) as each Prefect future finishes; polls so that Ctrl-C is seen at once."""
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
    import multiprocessing

    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()  # None outside the flow: then only the children remain
    executor = getattr(getattr(ctx, "task_runner", None), "_executor", None)
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)
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


def exit_now(code: int) -> None:
    """Stop the temporary servers, flush, and leave without the interpreter's exit joins.

    After an interrupted sweep, exit could block on the process pool for good (about 1 in
    5 test runs under load: every run already marked, the server stopped, the process
    still there a minute later). Nothing of ours is left to write by then.
    """
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer._instances.get(None)
    if server is not None:
        server.stop()
    for proc in list(_detached_procs):
        _stop(proc)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# ---- 5. the temporary API server dies with a terminal Ctrl-C -------------------------------
# Prefect's temporary server runs in the foreground process group. A terminal sends Ctrl-C
# to the whole group, so it killed the server too, and the interrupted run then retried its
# last state updates against the dead server for minutes (144 s, then httpx tracebacks).
# Every server seedtrail starts therefore runs in its own session, outlives the signal
# while the run records "interrupted", and is stopped at exit:
# - a sweep starts one eagerly with the public CLI (`prefect server start`, services off
#   like the temporary one), shared by the sweep and its worker processes: one SQLite
#   file, one writer (`start_detached_server`);
# - train, verify and compare keep Prefect's lazy temporary server (a command that fails on
#   bad input starts none, Prefect's start-up limit applies), but its process is the same
#   detached `prefect server start` (`detached_server`).
# Both use the public CLI and patch nothing inside Prefect (tested).

_detached_procs: list[subprocess.Popen] = []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _popen_server(port: int, stderr: Any = subprocess.DEVNULL) -> subprocess.Popen:
    """`prefect server start` (public CLI, services and UI off) in its own session."""
    env = {**os.environ, "PREFECT_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port), "--no-services"],
        env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
    )  # fmt: skip


def start_detached_server(timeout: float = 120) -> str:
    """Start `prefect server start` in its own session; return its API URL once healthy."""
    port = _free_port()
    proc = _popen_server(port, stderr=subprocess.PIPE)
    atexit.register(_stop, proc)
    _detached_procs.append(proc)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            err = proc.stderr.read().decode(errors="replace")[-500:] if proc.stderr else ""
            raise RuntimeError(f"the temporary Prefect server did not start: {err}")
        time.sleep(0.2)


def use_api_url(url: str) -> None:
    """Point this process, every thread of it and its future workers at the API `url`.

    Threads do not inherit a `temporary_settings` context, and Prefect's process-wide
    settings were read from the environment at import; without the refresh, its log
    and event threads would start a second temporary server of their own.
    """
    from prefect.context import refresh_global_settings_context

    os.environ["PREFECT_API_URL"] = url  # inherited by worker processes
    refresh_global_settings_context()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@functools.cache
def _detached_server_class() -> type:
    from prefect.server.api.server import SubprocessASGIServer

    class DetachedServer(SubprocessASGIServer):
        """Prefect's lazy temporary API server, run as the sweep's is (`_popen_server`).

        Prefect still decides when to start it (first client call), waits for it within
        its start-up limit (section 6) and stops it at exit; only the process differs.
        """

        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            return _popen_server(self.port)

    return DetachedServer


def detached_server() -> Any:
    """Make Prefect's default temporary API server (no PREFECT_API_URL) a detached one.

    Prefect starts it lazily on the first client call through `SubprocessASGIServer()`,
    which returns the instance registered for port None: ours is registered there. A
    server already running in that slot (e.g. a test harness) is returned as it is.
    With an API URL configured there is no temporary server to arrange: nothing is done,
    and Prefect's server code (1.7 s of imports here) is never loaded.
    """
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return None
    from prefect.server.api.server import SubprocessASGIServer

    cls = _detached_server_class()
    current = SubprocessASGIServer._instances.get(None)
    if current is not None and not isinstance(current, cls):
        if current.running:
            return current
        del SubprocessASGIServer._instances[None]
    return cls()


# ---- 6. the temporary API's 20 s start-up limit ---------------------------------------------
# The temporary Prefect API that `python -m flows.*` starts when no server is configured.
#
# Prefect gives that server 20 s to answer. On an empty PREFECT_HOME it must first
# create and migrate its SQLite database, and on 2 busy cores (TensorFlow importing
# beside it, another job running) that took ~25 s here: a new user's very first
# command failed with a timeout traceback. So, unless the user chose a limit
# themselves (environment, profile or prefect.toml: theirs always wins), seedtrail
# waits up to COLD_START_TIMEOUT_S. If it still fails, the user gets one line saying
# what failed and what to do.

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


# ---- 7. a served sweep's runs overlapped as threads of one process -------------------------
# The runner reloads a served or worker-run flow from its entrypoint, so a task runner set
# with `.with_options()` is lost and Prefect's default thread pool (no limit) runs every
# seed at once in one process: TensorFlow's seeds and thread pools are process-wide. The
# sweep flow therefore declares its runner in its decorator. A ProcessPoolExecutor also
# reuses a worker process for the next task; one process per run needs
# `max_tasks_per_child=1`, which ProcessPoolTaskRunner does not expose.


def one_process_per_run_runner(max_workers: int = 1) -> Any:
    """A ProcessPoolTaskRunner whose worker processes each run one task, then exit."""
    from concurrent.futures import ProcessPoolExecutor

    from prefect.task_runners import ProcessPoolTaskRunner

    class OneProcessPerRunTaskRunner(ProcessPoolTaskRunner):
        def __enter__(self) -> OneProcessPerRunTaskRunner:
            super().__enter__()
            pool = self._executor  # no process started yet: processes start on submit
            assert pool is not None
            self._executor = ProcessPoolExecutor(
                max_workers=pool._max_workers,
                mp_context=pool._mp_context,
                initializer=pool._initializer,
                initargs=pool._initargs,
                max_tasks_per_child=1,
            )
            pool.shutdown(wait=False)
            return self

    OneProcessPerRunTaskRunner.__qualname__ = OneProcessPerRunTaskRunner.__name__
    return OneProcessPerRunTaskRunner(max_workers=max_workers)


# ---- 8. a flow_run_name callable always replaces the run's name ----------------------------
# Prefect applies `flow_run_name` to every run, also one whose name a person typed in the
# custom-run form. A name nobody typed is one Prefect generated: the server's
# (`generate_slug(2)`: coolname words, e.g. `urban-bat`) or the one the UI's custom-run
# form prefills (a Greek letter, maybe digits, then star names: `gamma2-tethys`). Only such
# a name is replaced; a typed name that looks like one (`beta-test`) is replaced too.

_GREEK = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon phi chi psi omega"
_UI_GENERATED = re.compile(rf"({'|'.join(_GREEK.split())})\d*(-[a-z]+){{1,3}}")


@functools.cache
def _coolname_words() -> frozenset[str]:
    from coolname.data import config

    words: set[str] = set()
    for entry in config.values():
        if entry.get("type") == "words":
            for w in entry["words"]:
                words.update(w.replace(" ", "-").split("-"))
    return frozenset(words)


def is_generated_name(name: str | None) -> bool:
    """Whether a flow-run name is one Prefect generated (not typed by a person)."""
    if not name:
        return True
    if _UI_GENERATED.fullmatch(name):
        return True
    parts = name.split("-")
    return len(parts) >= 2 and all(p in _coolname_words() for p in parts)


def keep_typed_name(generated: Callable[[], str]) -> Callable[[], str]:
    """A flow_run_name callable that keeps a name typed by a person, else `generated()`."""

    def name() -> str:
        from prefect.runtime import flow_run

        current = flow_run.name
        return generated() if is_generated_name(current) else str(current)

    return name


# ---- 9. a flow that fails on its parameters logs a traceback ------------------------------
# With validate_parameters=True, parameters that fail validation (a cross-field rule the
# server's schema cannot express, e.g. split 0.5 + 0.45, or any invalid value with schema
# enforcement off) fail the run inside Prefect's engine: ~15 lines of traceback in the
# flow-run logs and a state message with the exception's repr. seedtrail's flows validate
# their own parameters and end Failed with one line instead. A served or worker run's
# engine then raises the state's error once more and logs it with its traceback ("Engine
# execution exited with unexpected exception"): for bad input (InputError) that record is
# dropped from the flow-run logs and the terminal keeps one line.

ENGINE_EXITED = "Engine execution exited with unexpected exception"


def _clean_input_errors(record: logging.LogRecord) -> bool:
    from seedtrail.core.errors import InputError

    exc = record.exc_info[1] if record.exc_info else None
    if not isinstance(exc, InputError):
        return True
    if record.getMessage().startswith(ENGINE_EXITED):
        return False  # the state and the flow's own error line already say it
    record.msg, record.args = f"{record.getMessage()}: {exc}", ()
    record.exc_info, record.exc_text = None, None
    return True


def quiet_input_error_tracebacks() -> None:
    """Bad input ends a flow run with its one line, never a traceback (idempotent)."""
    for name in ("prefect.flow_runs", "prefect.engine"):
        logger = logging.getLogger(name)
        if _clean_input_errors not in logger.filters:
            logger.addFilter(_clean_input_errors)


_CLEAN_FAILURES: set[str] = set()  # messages flows of this process ended with


def clean_failure(message: str) -> Any:
    """A Failed state with one line, as both its message and (raised on .result()) its error.

    Call it before logging the line: the CLI (drop_input_error_lines) then leaves the flow's
    lines about it out, as it prints `error: <line>` itself.
    """
    from prefect.states import Failed

    from seedtrail.core.errors import InputError

    _CLEAN_FAILURES.add(message)
    return Failed(message=message, data=InputError(message))


# ---- 10. SIGTERM kills the process without clean-up ------------------------------------------
# Python's default for SIGTERM (kill, systemd, Kubernetes) is to die at once: no `finally`,
# no atexit. The run stayed "running" (or Prefect marked it "failed"), no resume hint was
# printed and the temporary server was left running. SIGTERM now raises like Ctrl-C in the
# main thread. During a flow run Prefect swaps in its own handler (raising its
# TerminationSignal) and, afterwards, re-sends the signal to the handler it found: ours.


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: mark the run, clean up, exit 143."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def interrupt_on_sigterm() -> None:
    """Turn SIGTERM into an exception in the main thread, as SIGINT is."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def interruption_types() -> tuple[type[BaseException], ...]:
    """What an interrupted run sees: Ctrl-C, our SIGTERM, or Prefect's SIGTERM inside a flow."""
    from prefect.exceptions import TerminationSignal

    return (KeyboardInterrupt, TerminationSignal)


def interrupt_signal(err: BaseException) -> int:
    """The signal behind an interruption: ours and Prefect's carry it; Ctrl-C is SIGINT."""
    signum = getattr(err, "signum", None) or getattr(err, "signal", None)
    return int(signum) if signum else int(signal.SIGINT)


def interrupt_exit_code(err: BaseException) -> int:
    """128 + the signal number, as a shell reports a process ended by that signal."""
    return 128 + interrupt_signal(err)


# ---- 11. servers phone home ------------------------------------------------------------------
# The API server (ours or a test's) sends usage analytics unless told not to, and logs
# "Failed to send telemetry" on a machine without network. The server reads
# PREFECT_SERVER_ANALYTICS_ENABLED; Prefect's client SDK honours DO_NOT_TRACK. Prefect reads
# its settings once, at import, and servers inherit the environment: set before that.
TELEMETRY_OFF = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


def environment_defaults(environ: MutableMapping[str, str] | None = None) -> None:
    """Set our Prefect defaults unless the user chose otherwise; call before `import prefect`."""
    env = os.environ if environ is None else environ
    for key, value in TELEMETRY_OFF.items():
        env.setdefault(key, value)
