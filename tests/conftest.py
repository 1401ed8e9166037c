"""Shared fixtures: one Prefect test server per session, and a runner for CLI subprocesses."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from seedtrail.core.errors import InputError
from seedtrail.prefect.environment import TELEMETRY_OFF, environment_defaults
from seedtrail.runtime import tf_runtime
from settings.model import DeterminismSettings

# Before anything imports Prefect: the test servers (in-process harness and
# `prefect server start`) inherit this environment, so no telemetry leaves them.
environment_defaults()

# Before anything imports TensorFlow (a test module may, at collection): this process
# then runs it as a run's process does, under the default oneDNN cap and ops switch.
# Subprocesses do not inherit these (cli_env): each applies its own settings.
_RUNTIME_ENV = (
    "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS", "TF_CPU_ALLOCATOR_USE_BFC",
    # the Keras backend and its own flags (seedtrail/runtime/backends.py)
    "KERAS_BACKEND", "XLA_FLAGS", "JAX_DEFAULT_PRNG_IMPL", "JAX_THREEFRY_PARTITIONABLE",
    "CUBLAS_WORKSPACE_CONFIG",
)  # fmt: skip
# On a CPU that cannot run the default profile its runs say so, test by test.
with contextlib.suppress(InputError):
    tf_runtime.set_env(DeterminismSettings())

ROOT = Path(__file__).resolve().parent.parent

# A configuration small enough for real training in a few seconds.
TINY = (
    "--data.n-samples", "160",
    "--data.image-size", "16",
    "--model.conv-filters", "4,8",
    "--model.dense-units", "16",
    "--training.epochs", "2",
    "--augment.preview-samples", "4",
)  # fmt: skip


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str

    def run_dirs(self, output_dir: Path) -> list[Path]:
        return sorted(p for p in Path(output_dir).iterdir() if (p / "manifest.json").exists())

    def manifest(self, output_dir: Path) -> dict:
        (run,) = self.run_dirs(output_dir)
        return json.loads((run / "manifest.json").read_text())


# A PREFECT_HOME whose database is migrated and whose block types are registered, copied
# into each new home a test gives a command (see `cli_env`). On an empty home, a temporary
# server first migrates its SQLite database and registers Prefect's block types: 15.8 s of
# CPU against 4.6 s on a used home (measured on 2 cores), paid by dozens of commands per
# suite. The template is a copy of the session server's database, taken as that server
# (started on an empty home) answers its first health check: one migration per session.
# Tests of a user's very first command ask for an empty home (`empty_home=True`).
_SESSION_ROOT: Path | None = None  # the session's folder for both (set by `_session_root`)
_TEMPLATE_FILES = ("prefect.db", "memo_store.toml")


def _server_env(env: dict[str, str], url: str) -> dict[str, str]:
    # The UI, where enabled, calls this port's API, not the default port's.
    return {**env, "PREFECT_UI_API_URL": url}


def _wait_healthy(url: str, pid: int, log: Path, timeout: float) -> None:
    """Until the server at `url` answers; its process `pid` (the server, or the keeper that
    another worker may have started) is stopped if it ends or the time runs out first."""
    import signal
    import time
    import urllib.request

    from tests.session_server import alive

    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=2):
            return
        if not alive(pid) or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            raise RuntimeError(f"prefect server did not start: {log.read_text()}")
        time.sleep(0.2)


def _template_home() -> Path:
    assert _SESSION_ROOT is not None
    return _SESSION_ROOT / "template"


def _snapshot_template(server_home: Path) -> None:
    """Copy a running server's database (SQLite's backup API: a consistent copy of a live
    database) and its memo of registered blocks into the template."""
    import shutil
    import sqlite3

    template = _template_home()
    template.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(server_home / "prefect.db")
    target = sqlite3.connect(template / "prefect.db")
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    if (server_home / "memo_store.toml").exists():
        shutil.copyfile(server_home / "memo_store.toml", template / "memo_store.toml")
    (template / "ready").touch()


def _seed_home(prefect_home: Path) -> None:
    """Give a new home the template's database (nothing if it has one, or outside a session)."""
    import shutil

    if _SESSION_ROOT is None or (Path(prefect_home) / "prefect.db").exists():
        return
    template = _template_home()
    if not (template / "ready").exists():
        session_server_url()  # its start leaves the template
    Path(prefect_home).mkdir(parents=True, exist_ok=True)
    for name in _TEMPLATE_FILES:
        if (template / name).exists():
            shutil.copyfile(template / name, Path(prefect_home) / name)


def _base_env(prefect_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SEEDTRAIL_"))}
    for key in _RUNTIME_ENV:  # what this process applied for itself (above)
        env.pop(key, None)
    # JAX's import sets TF_CPP_MIN_LOG_LEVEL=1 where it is unset (jax/__init__.py): a
    # command would inherit it from this process and print TF's E-level lines, which a
    # user's shell never sets. Commands set their own (seedtrail/runtime/quiet.py).
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.update(
        PYTHONPATH=str(ROOT),
        PREFECT_HOME=str(prefect_home),
        **TELEMETRY_OFF,  # every server a test starts stays offline
        **extra,
    )
    return env


def cli_env(prefect_home: Path, *, empty_home: bool = False, **extra: str) -> dict[str, str]:
    """A command's environment, as a user's shell gives it, with its own PREFECT_HOME.

    The home gets the session's migrated Prefect database unless `empty_home` (a user's
    first command) or it already has one: the tests are about seedtrail, not about
    Prefect migrating a new database (tests/test_first_run.py covers that case).
    """
    if not empty_home:
        _seed_home(prefect_home)
    return _base_env(prefect_home, **extra)


def run_module(
    module: str,
    args: Sequence[str],
    *,
    cwd: Path,
    prefect_home: Path,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> Completed:
    """Run `python -m module args` in a fresh process, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env={**cli_env(prefect_home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Completed(proc.returncode, proc.stdout, proc.stderr)


def start_module(
    module: str, args: Sequence[str], *, cwd: Path, prefect_home: Path, env: dict | None = None
) -> subprocess.Popen:
    """Like run_module, but returns at once so that several runs overlap."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env={**cli_env(prefect_home), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> Completed:
    out, err = proc.communicate(timeout=timeout)
    return Completed(proc.returncode, out, err)


def train_in_process(settings: Any, **options: Any) -> dict:
    """The `train` flow in this process (one parameter per settings section, plus options)."""
    from flows.train import train_flow
    from seedtrail.prefect.parameters import settings_parameters

    return train_flow(**settings_parameters(settings), **options)


@pytest.fixture
def settings(tmp_path: Path):
    """Small settings for in-process flow runs: real training in about a second."""
    from settings import DataSettings, ModelSettings, RunSettings, SplitSettings, TrainingSettings

    return RunSettings(
        output_dir=tmp_path / "runs",
        data=DataSettings(n_samples=120, image_size=16),
        split=SplitSettings(test_size=0.25, val_size=0.25),
        model=ModelSettings(conv_filters=(4,), dense_units=8),
        training=TrainingSettings(epochs=2),
    )


@pytest.fixture(scope="session")
def tensorflow_as_runs_configure_it() -> None:
    """TensorFlow in this process, with the threads and determinism every run applies.

    TensorFlow fixes its thread pools at its first op. A test that built a model
    unconfigured would fix them at TF's defaults, and every later in-process run of
    the same pytest worker (which asks for 1/1) would refuse: a failure that depends on
    the order tests happen to run in.
    """
    from seedtrail.runtime import hardware, tf_runtime
    from settings.model import DeterminismSettings

    tf_runtime.configure(DeterminismSettings(), 0, hardware.expected_devices(hardware.gpu_facts()))
    tf_runtime.configured_tf()


@pytest.fixture(scope="session")
def prefect_server(prefect_api_url: str) -> Iterator[None]:
    """The Prefect API for in-process flow runs: the session's real server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_api_url}):
        yield


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_owner() -> int:
    """The process whose end ends the test session: the pytest-xdist controller (a worker's
    parent), or this process without xdist."""
    return os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid()


def _session_record(owner: int) -> Path:
    """Where the session's server is recorded: named by its owner's pid and start time (a
    later session cannot mistake a leftover record for its own)."""
    import tempfile

    from tests.session_server import stat_fields

    fields = stat_fields(owner)
    assert fields is not None  # the owner is this process or its parent: it runs
    started = fields[19]  # field 22: the start time
    return Path(tempfile.gettempdir()) / f"seedtrail-test-server-{owner}-{started}.json"


_KEEPER: subprocess.Popen | None = None  # the keeper, where this process started it


def session_server_url() -> str:
    """One real `prefect server start` for the whole session, on a loopback port with its
    own PREFECT_HOME, shared by every pytest worker; started by the first to ask.

    Subprocess runs point PREFECT_API_URL at it, so they skip the temporary server start.
    One server, not one per worker: each server costs ~7 CPU-s to start and ~0.5 per 30 s
    idle, and the tests find their runs by id or run directory, never by "the latest". It
    starts on an empty home and its fresh database becomes the template (`_seed_home`).
    `tests.session_server` stops it when the session ends (`pytest_sessionfinish`) or its
    owner is gone.
    """
    return _session_server(wait=True)


def _session_server(wait: bool) -> str:
    """The session server's URL; started if no process of the session has; with `wait`,
    once it answers (the first to see it answer snapshots the template)."""
    global _KEEPER
    assert _SESSION_ROOT is not None
    owner = _session_owner()
    record = _session_record(owner)
    home = _SESSION_ROOT / "server"
    with exclusively(record.with_suffix(".lock")):
        if not record.exists():
            home.mkdir(parents=True, exist_ok=True)
            port = _free_port()
            url = f"http://127.0.0.1:{port}/api"
            with open(home / "server.log", "w") as log:
                keeper = subprocess.Popen(
                    [sys.executable, "-m", "tests.session_server", str(owner), str(port)],
                    cwd=ROOT, env=_server_env(_base_env(home), url),
                    stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            if owner == os.getpid():
                _KEEPER = keeper
            record.write_text(json.dumps({"url": url, "keeper": keeper.pid, "ready": False}))
        info = json.loads(record.read_text())
        if wait and not info["ready"]:
            _wait_healthy(info["url"], info["keeper"], home / "server.log", timeout=180)
            _snapshot_template(home)
            info["ready"] = True
            record.write_text(json.dumps(info))
        return info["url"]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the session's server as soon as a pytest worker knows the session has slow
    tests: its migration (~15 s) then overlaps the other workers' collection, instead of
    every worker's first test waiting for all of it. Without xdist nothing runs beside it."""
    global _SESSION_ROOT
    basetemp = session.config.option.basetemp  # a worker's: the session's folder + popen-gwN
    if not os.environ.get("PYTEST_XDIST_WORKER") or not basetemp:
        return
    if any(item.get_closest_marker("slow") for item in session.items):
        _SESSION_ROOT = Path(basetemp).resolve().parent / "prefect"  # as `_session_root` sets it
        _SESSION_ROOT.mkdir(exist_ok=True)
        _session_server(wait=False)


@pytest.fixture(scope="session")
def prefect_api_url() -> str:
    """The session's Prefect server (`session_server_url`)."""
    return session_server_url()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The owner of the session (the xdist controller, or pytest alone) stops its server."""
    import signal
    import time

    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    record = _session_record(os.getpid())
    if not record.exists():
        return
    keeper = json.loads(record.read_text())["keeper"]
    with contextlib.suppress(ProcessLookupError):
        os.kill(keeper, signal.SIGTERM)
    if _KEEPER is not None:  # our own child: reap it
        _KEEPER.wait(timeout=30)
    else:  # a worker's child, reparented when that worker ended
        from tests.session_server import alive

        deadline = time.monotonic() + 30
        while alive(keeper) and time.monotonic() < deadline:
            time.sleep(0.1)
    record.unlink()
    record.with_suffix(".lock").unlink(missing_ok=True)


@dataclass
class TinyRun:
    """One finished `python -m flows.train` subprocess on the tiny configuration."""

    args: tuple[str, ...]
    output_dir: Path
    result: Completed

    @property
    def run_dir(self) -> Path:
        (run,) = self.result.run_dirs(self.output_dir)
        return run

    @property
    def manifest(self) -> dict:
        return json.loads((self.run_dir / "manifest.json").read_text())

    def fingerprints(self) -> dict[str, str]:
        return {k: v["fingerprint"] for k, v in self.manifest["stages"].items()}


class TinyRuns:
    """Named tiny runs, each in its own process and working directory, computed on demand.

    Shared by every test of the session, across pytest-xdist workers too: the first
    worker to ask for a name runs it (under a file lock), the others read its record.
    Runs are started two at a time (2 cores).
    """

    def __init__(self, root: Path, api_url: str) -> None:
        self.root, self.api_url = root, api_url
        self.done: dict[str, TinyRun] = {}

    def _record(self, name: str) -> Path:
        return self.root / f"cwd-{name}" / "finished.json"

    def _load(self, name: str) -> TinyRun | None:
        record = self._record(name)
        if not record.is_file():
            return None
        data = json.loads(record.read_text())
        return TinyRun(tuple(data["args"]), Path(data["output_dir"]), Completed(**data["result"]))

    def get(
        self, **variants: Sequence[str] | tuple[Sequence[str], dict[str, str]]
    ) -> dict[str, TinyRun]:
        """`name=(args)` or `name=(args, env)`; returns every named run, running the missing ones."""
        todo = sorted(n for n in variants if n not in self.done)  # sorted: one lock order
        for i in range(0, len(todo), 2):
            batch = todo[i : i + 2]
            with contextlib.ExitStack() as locks:
                for name in batch:
                    locks.enter_context(exclusively(self.root / f"{name}.lock"))
                procs = {}
                for name in batch:
                    if (run := self._load(name)) is not None:  # another worker ran it
                        self.done[name] = run
                        continue
                    spec = variants[name]
                    has_env = (
                        isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], dict)
                    )
                    args, env = spec if has_env else (spec, {})
                    cwd = self.root / f"cwd-{name}"
                    out = cwd / "runs"
                    cwd.mkdir(parents=True)
                    full = (*TINY, *args, "--output-dir", str(out))
                    procs[name] = (full, out, start_module(
                        "flows.train", full, cwd=cwd, prefect_home=self.root / "home",
                        env={"PREFECT_API_URL": self.api_url, **env},
                    ))  # fmt: skip
                for name, (full, out, proc) in procs.items():
                    res = finish(proc)
                    assert res.returncode == 0, f"run {name} failed:\n{res.stdout}\n{res.stderr}"
                    self._record(name).write_text(json.dumps({
                        "args": list(full), "output_dir": str(out), "result": vars(res),
                    }))  # fmt: skip
                    self.done[name] = TinyRun(full, out, res)
        return {n: self.done[n] for n in variants}


def seed1_runs(tiny_runs: TinyRuns) -> dict[str, TinyRun]:
    """Root seed 1, plain and with the model stage pinned to the base run's model seed:
    two tests read one pair (test_reproducibility, test_verify_compare)."""
    model_seed = str(tiny_runs.get(base=())["base"].manifest["seeds"]["stages"]["model"])
    return tiny_runs.get(
        seed1=("--seed", "1"), seed1_pinned_model=("--seed", "1", "--seeds.model", model_seed)
    )


def shared_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder of this test session that every pytest-xdist worker sees (under pytest-xdist
    each worker's base temp is a folder of the session's own one; without it, that one)."""
    session = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        session = session.parent
    root = session / name
    root.mkdir(exist_ok=True)
    return root


@contextlib.contextmanager
def exclusively(lock: Path) -> Iterator[None]:
    """One pytest worker at a time (a file lock, released when the file closes)."""
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session", autouse=True)
def _session_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Where the session's Prefect server and template home live (made on first use)."""
    global _SESSION_ROOT
    _SESSION_ROOT = shared_dir(tmp_path_factory, "prefect")
    yield
    _SESSION_ROOT = None


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> TinyRuns:
    return TinyRuns(shared_dir(tmp_path_factory, "tiny-runs"), prefect_api_url)


# Test modules whose tests one pytest worker runs together, in order. test_serve.py: its
# module-scoped server, `flows.serve` and browser then start once per session, not once per
# worker that happens to run one of its tests (each start costs ~10 CPU-s).
ONE_WORKER_MODULES = frozenset({"tests/test_serve.py"})


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup`, grouping by module (ONE_WORKER_MODULES) as well as by mark.

    pytest-xdist groups by the `xdist_group` mark by appending "@group" to each node id on
    the worker (xdist/remote.py); under pytest 9.2 the appended id no longer takes
    (pytest-dev/pytest-xdist#1386; checked with pytest 9.2.0 and pytest-xdist 3.8.0), and
    the groups are silently ignored. tests/test_xdist_groups.py fails once it works again.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class ModuleGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER_MODULES else super()._split_scope(nodeid)

    return ModuleGroupScheduling(config, log)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one pytest worker per core, plus one (at most --maxprocesses).

    Most slow tests wait on a subprocess (a server starting, a run reaching its first
    checkpoint) for part of their time: with one worker per core, the 2-core CI machine
    sat at ~1.8 cores busy; a third worker fills those waits.
    """
    return len(os.sched_getaffinity(0)) + 1


@pytest.fixture(scope="session")
def example_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small JPEG folder (examples/make_images.py), made once per session."""
    from examples.make_images import write_dataset

    # Shared by the pytest workers: the session's BYO runs (tiny_runs) record this path.
    shared = shared_dir(tmp_path_factory, "byo")
    root = shared / "images"
    with exclusively(shared / "images.lock"):
        if not (shared / "images.done").exists():
            write_dataset(root, per_class=30, size=16)
            (shared / "images.done").touch()
    return root


# Fixtures that start Prefect or a server: a test using one belongs to the slow tier.
_SLOW_FIXTURES = frozenset({"prefect_server", "prefect_api_url", "tiny_runs", "serve_api_url"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep the fast tier fast: a test that starts Prefect must say it is slow.

    Slow tests go first (stable otherwise): the pytest workers then end on short
    tests, not one worker on a minute-long test while the other idles. First of all the
    slow tests that need nothing of the session's server (`no_session_server`): they run
    while its database migrates (~15 s), when the other workers' first tests wait.
    """
    for item in items:
        uses = _SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses and item.get_closest_marker("slow") is None:
            raise pytest.UsageError(
                f"{item.nodeid} uses {', '.join(sorted(uses))}: mark it @pytest.mark.slow"
            )
        if uses and item.get_closest_marker("no_session_server") is not None:
            raise pytest.UsageError(
                f"{item.nodeid} uses {', '.join(sorted(uses))}: not no_session_server"
            )
    items.sort(
        key=lambda item: (
            item.get_closest_marker("slow") is None,
            item.get_closest_marker("no_session_server") is None,
        )
    )
