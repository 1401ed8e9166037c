"""`python -m flows.sweep` end to end, in separate processes, on the tiny configuration.

Per-seed fingerprints are compared with the session's single runs (`tiny_runs`:
`base` = seed 0, `seed1` = seed 1), never with hard-coded values.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from settings.seeds import STAGES
from tests.conftest import (
    ROOT,
    TINY,
    Completed,
    TinyRuns,
    _free_port,
    cli_env,
    run_module,
)

# Every test here starts Prefect or a Python process, or trains for real.
pytestmark = pytest.mark.slow


def _sweep_args(sweep_dir: Path, *extra: str) -> list[str]:
    return [*TINY, "--output-dir", str(sweep_dir.parent), "--sweep-dir", str(sweep_dir), *extra]


def _summary(sweep_dir: Path) -> dict:
    return json.loads((sweep_dir / "summary.json").read_text())


def _by_seed(summary: dict, vary: str = "all") -> dict[int, dict]:
    return {r["seed"]: r for r in summary["runs"] if r["vary"] == vary}


def _run_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p for p in sweep_dir.iterdir() if (p / "manifest.json").is_file())


def _ok(res: Completed) -> None:
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"


def test_sweep_equals_single_runs_whatever_the_workers(
    tiny_runs: TinyRuns, prefect_api_url: str, tmp_path: Path
) -> None:
    """Two workers, each seed in its own process, give the single runs' bytes. One worker
    (the default) is checked against single runs by test_byo_flow's sweep, a Dask cluster below."""
    singles = tiny_runs.get(base=(), seed1=("--seed", "1"))
    two = tmp_path / "w2" / "sweep"
    res = run_module(
        "flows.sweep", _sweep_args(two, "--seeds", "0,1", "--workers", "2"),
        cwd=tmp_path, prefect_home=tmp_path / "home", env={"PREFECT_API_URL": prefect_api_url},
    )  # fmt: skip
    _ok(res)

    summary = _summary(two)
    runs = _by_seed(summary)
    assert summary["complete"] == 2 and summary["failed"] == 0
    for seed, single in ((0, singles["base"]), (1, singles["seed1"])):
        assert runs[seed]["status"] == "complete"
        assert runs[seed]["fingerprints"] == single.fingerprints(), seed
        assert runs[seed]["stage_seeds"] == single.manifest["seeds"]["stages"]
    acc = [runs[s]["metrics"]["test_accuracy"] for s in (0, 1)]
    stats = summary["statistics"]["all"]["test_accuracy"]
    assert stats["n"] == 2
    assert stats["mean"] == pytest.approx(sum(acc) / 2)
    assert stats["min"] == min(acc) and stats["max"] == max(acc)
    assert stats["ci95_low"] <= stats["mean"] <= stats["ci95_high"]
    assert {"std", "ci95_low", "ci95_high"} <= set(stats)
    for name in ("summary.md", "distribution.png"):
        assert (two / name).stat().st_size > 0
    assert (two / "distribution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for d in _run_dirs(two):
        assert json.loads((d / "manifest.json").read_text())["status"] == "complete"


INJECT = """
import errno, os
from pathlib import Path

_real_replace = os.replace


def _replace(src, dst, *args, **kwargs):
    if Path(dst).name == {name!r} and Path({blocker!r}).exists():
        raise OSError(errno.EIO, "injected I/O error")
    return _real_replace(src, dst, *args, **kwargs)


os.replace = _replace
"""


def _fail_renames_onto(folder: Path, name: str) -> Path:
    """A sitecustomize (every process of the sweep imports it from PYTHONPATH) that fails the
    rename onto a file called `name` while the returned blocker file exists."""
    folder.mkdir()
    blocker = folder / "blocked"
    blocker.touch()
    (folder / "sitecustomize.py").write_text(INJECT.format(name=name, blocker=str(blocker)))
    return blocker


def test_vary_one_source_pins_the_others_a_failed_run_keeps_the_rest_and_resume(
    tiny_runs: TinyRuns, prefect_api_url: str, tmp_path: Path
) -> None:
    singles = tiny_runs.get(base=(), seed1=("--seed", "1"))
    base, seed1 = singles["base"], singles["seed1"]
    sweep = tmp_path / "sweep"
    # Break one run only: varying the model, seed 1 builds seed1's initial weights; saving
    # them fails with an I/O error while `blocker` exists. (A directory in their slot in the
    # store no longer fails a run: it is a corrupt entry, replaced. Issue 24.)
    blocker = _fail_renames_onto(tmp_path / "inject", f"{seed1.fingerprints()['model']}.keras")
    # One worker, the CLI's default: the runs after the failed one train in its process.
    args = _sweep_args(sweep, "--seeds", "0,1", "--vary", "model,split")
    kw = {"cwd": tmp_path, "prefect_home": tmp_path / "home",
          "env": {"PREFECT_API_URL": prefect_api_url,
                  "PYTHONPATH": f"{ROOT}:{tmp_path / 'inject'}"}}  # fmt: skip
    res = run_module("flows.sweep", args, **kw)
    assert res.returncode == 1, f"{res.stdout}\n{res.stderr}"
    assert "1 of 4 runs failed" in res.stderr
    summary = _summary(sweep)
    assert summary["vary"] == ["model", "split"]
    assert (summary["complete"], summary["failed"]) == (3, 1)
    failed = _by_seed(summary, "model")[1]
    assert failed["status"] == "failed" and failed["error"]
    assert summary["statistics"]["model"]["test_accuracy"]["n"] == 1
    finished = {r["run_dir"] for r in summary["runs"] if r["status"] == "complete"}
    assert len({r["process"]["pid"] for r in summary["runs"] if r["status"] == "complete"}) == 1

    # The same command again, fixed: the 3 finished runs are skipped, the failed one runs.
    blocker.unlink()
    res = run_module("flows.sweep", args, **kw)
    _ok(res)
    summary = _summary(sweep)
    assert summary["complete"] == 4
    resumed = {r["run_dir"] for r in summary["runs"] if r["resumed"]}
    assert resumed == finished
    assert not _by_seed(summary, "model")[1]["resumed"]

    model = _by_seed(summary, "model")
    fps = [model[s]["fingerprints"] for s in (0, 1)]
    for stage in ("environment", "data", "augment", "split"):
        assert fps[0][stage] == fps[1][stage] == base.fingerprints()[stage], stage
    for stage in ("model", "train"):
        assert fps[0][stage] != fps[1][stage], stage
    # the varied stage gets exactly what `--seed 1` gives it: the same initial weights
    assert model[1]["stage_seeds"]["model"] == seed1.manifest["seeds"]["stages"]["model"]
    assert fps[1]["model"] == seed1.fingerprints()["model"]
    assert model[1]["stage_seeds"]["train"] == base.manifest["seeds"]["stages"]["train"]

    split = _by_seed(summary, "split")
    fps = [split[s]["fingerprints"] for s in (0, 1)]
    for stage in ("data", "augment", "model"):
        assert fps[0][stage] == fps[1][stage], stage
    assert fps[0]["split"] != fps[1]["split"]

    # one side-by-side table: each metric, once per source
    assert set(summary["statistics"]) == {"model", "split"}
    md = (sweep / "summary.md").read_text()
    assert "| accuracy | model | 2 |" in md and "| accuracy | split | 2 |" in md


def _wait_until_listening(port: int, timeout: float = 60) -> None:
    """Poll until something accepts connections on the port (the Dask scheduler)."""
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            time.sleep(0.1)


@pytest.fixture
def dask_cluster(tmp_path: Path, prefect_api_url: str) -> Iterator[str]:
    """A real local Dask cluster: one scheduler and one single-threaded worker process.

    One worker, so the sweep's two seeds run one after another in one process: a Dask
    worker's second run must not see the first's state (two processes in parallel are
    `--workers 2`'s test above; one more TensorFlow import here is ~10 CPU s of the suite)."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = cli_env(tmp_path / "dask-home", PREFECT_API_URL=prefect_api_url)
    log = open(tmp_path / "dask.log", "w")  # noqa: SIM115 (closed below)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", str(port), "--no-dashboard"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    ]  # fmt: skip
    try:
        _wait_until_listening(port)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
                 "--nthreads", "1", "--no-dashboard", "--local-directory", str(tmp_path / "dw")],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=90)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


def test_sweep_on_a_dask_cluster_equals_the_sequential_runs(
    tiny_runs: TinyRuns, prefect_api_url: str, dask_cluster: str, tmp_path: Path
) -> None:
    singles = tiny_runs.get(base=(), seed1=("--seed", "1"))
    sweep = tmp_path / "sweep"
    res = run_module(
        "flows.sweep", _sweep_args(sweep, "--seeds", "0,1", "--dask-address", dask_cluster),
        cwd=tmp_path, prefect_home=tmp_path / "home", env={"PREFECT_API_URL": prefect_api_url},
    )  # fmt: skip
    _ok(res)
    runs = _by_seed(_summary(sweep))
    assert runs[0]["fingerprints"] == singles["base"].fingerprints()
    assert runs[1]["fingerprints"] == singles["seed1"].fingerprints()
    assert set(runs[0]["fingerprints"]) == set(STAGES)
    # both in the one worker's process, one after the other: the second saw none of the first
    first, second = sorted((runs[s]["process"] for s in (0, 1)), key=lambda p: p["started"])
    assert first["pid"] == second["pid"] and first["finished"] <= second["started"], runs


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--vary", "weights"), "--vary: unknown source 'weights'"),
        (("--seeds", "1,x"), "--seeds: not a seed or range"),
        (("--workers", "0"), "--workers: must be between 1 and 256"),
        (("--seeds", "0", "--vary", "model", "--seeds.model", "5"), "seeds.model is pinned"),
        (("--dask-address", "localhost:8786"), "--dask-address: expected tcp://HOST:PORT"),
        (("--training.epochs", "0"), "training.epochs"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    res = run_module(
        "flows.sweep", [*TINY, "--output-dir", str(out), *args],
        cwd=tmp_path, prefect_home=tmp_path / "home", timeout=120,
    )  # fmt: skip
    assert res.returncode == 2, f"{res.stdout}\n{res.stderr}"
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in res.stderr
    assert not out.exists() or not any(out.iterdir())
