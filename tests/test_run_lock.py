"""Issue 24: a sweep rerun continues its interrupted runs, and a run is never resumed twice.

- A run directory is locked (fcntl.flock on `<run>/.lock`) by the process that runs or
  resumes it, for the run's life: a second `--resume` is one line naming the holder's
  pid, exit 2, before Prefect starts.
- A sweep interrupted with Ctrl-C and rerun continues the interrupted runs in their
  own directories from their checkpoints (it trained them from epoch 0 in new
  directories before, although the README said it continued them).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from seedtrail.cli.train_args import parse_train_args
from seedtrail.core.errors import InputError
from seedtrail.run.rundir import RunDirectory
from tests.conftest import TINY, cli_env, run_module
from tests.test_bad_input import _unfinished_run

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()} resume\\n".encode())
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def held_run(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen]]:
    """An interrupted run whose lock another live process holds, as a resume would."""
    run = _unfinished_run(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run / ".lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield run, holder
    finally:
        holder.kill()
        holder.wait()


def test_a_second_resume_of_a_locked_run_names_the_holder(
    held_run: tuple[Path, subprocess.Popen],
) -> None:
    run, holder = held_run
    with pytest.raises(InputError) as err:
        parse_train_args(["--resume", str(run)])
    assert err.value.problems == [f"--resume: run {run.name} is being resumed by pid {holder.pid}"]
    with pytest.raises(InputError, match=f"is being resumed by pid {holder.pid}"):
        RunDirectory.reopen(run)  # what the flow does, should the first check be raced
    holder.kill()
    holder.wait()
    parse_train_args(["--resume", str(run)])  # the kernel dropped the lock with its holder
    RunDirectory.reopen(run).finish("interrupted")


def test_a_run_in_progress_is_locked_until_it_finishes(tmp_path: Path) -> None:
    from settings import RunSettings

    header = {
        "settings": RunSettings(output_dir=tmp_path / "runs").model_dump(mode="json"),
        "seeds": {"root": 0, "stages": {}},
    }
    run = RunDirectory.create(tmp_path / "runs", "r1", header=header)
    with pytest.raises(InputError, match=r"^run r1 is being run by pid \d+$"):
        RunDirectory.reopen(run.path)
    run.finish("interrupted")
    again = RunDirectory.reopen(run.path)  # released: now it can be resumed
    assert again.manifest["status"] == "running"
    again.finish("interrupted")


@pytest.mark.slow
def test_a_second_resume_at_the_command_line_is_one_line_exit_2(
    tmp_path: Path, held_run: tuple[Path, subprocess.Popen]
) -> None:
    run, holder = held_run
    res = run_module(
        "flows.train", ["--resume", str(run)], cwd=tmp_path, prefect_home=tmp_path / "home",
        timeout=120,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert res.stderr == f"error: --resume: run {run.name} is being resumed by pid {holder.pid}\n"


@pytest.mark.slow
def test_a_sweep_rerun_after_ctrl_c_continues_the_interrupted_run(
    tmp_path: Path, prefect_api_url: str
) -> None:
    from tests.test_resume_cache import SIX_EPOCHS, _wait_for_checkpoint

    sweep_dir = tmp_path / "sweep"
    args = [*TINY, *SIX_EPOCHS, "--seeds", "3", "--sweep-dir", str(sweep_dir)]
    env = cli_env(tmp_path / "home", PREFECT_API_URL=prefect_api_url)  # the session's server
    sweep = subprocess.Popen(
        [sys.executable, "-m", "flows.sweep", *args], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # a shell job: Ctrl-C reaches the sweep and its workers
        # A pytest started in the background by a script ignores SIGINT, and a child
        # inherits that: the sweep would never see the Ctrl-C.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        run_dir = _wait_for_checkpoint(sweep_dir, 1)
        os.killpg(sweep.pid, signal.SIGINT)
        _, err = sweep.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sweep.pid, signal.SIGKILL)
    assert sweep.returncode == 130, err
    interrupted = json.loads((run_dir / "manifest.json").read_text())
    assert interrupted["status"] == "interrupted"

    rerun = run_module(
        "flows.sweep", args, cwd=tmp_path, prefect_home=tmp_path / "home",
        env={"PREFECT_API_URL": prefect_api_url}, timeout=600,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    runs = sorted(p for p in sweep_dir.iterdir() if (p / "manifest.json").is_file())
    assert runs == [run_dir], "the rerun trained in a new run directory"
    final = json.loads((run_dir / "manifest.json").read_text())
    assert final["status"] == "complete"
    assert [r["from_status"] for r in final["resumed"]] == ["interrupted"]
    assert final["stages"]["train"]["info"]["resumed_after_epoch"] >= 1
    (record,) = json.loads((sweep_dir / "summary.json").read_text())["runs"]
    assert record["run_dir"] == str(run_dir) and record["resumed"] is True
