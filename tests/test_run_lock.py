"""Issue 24: a sweep rerun continues its interrupted runs, and a run is never resumed twice.

- A run directory is locked (fcntl.flock on `<run>/.lock`) by the process that runs or
  resumes it, for the run's life: a second `--resume` is one line naming the holder's
  pid, exit 2, before Prefect starts.
- A sweep interrupted with Ctrl-C and rerun continues the interrupted runs in their
  own directories from their checkpoints (it trained them from epoch 0 in new
  directories before, although the README said it continued them).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from seedtrail.cli.train_args import parse_train_args
from seedtrail.core.errors import InputError
from seedtrail.run.rundir import RunDirectory, settings_fingerprint
from settings.seeds import SeedPlan
from tests.conftest import TINY, TinyRuns, run_module
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

    settings = RunSettings(output_dir=tmp_path / "runs")
    header = {
        "settings": settings.model_dump(mode="json"),
        "settings_fingerprint": settings_fingerprint(settings),
        "seeds": SeedPlan.from_settings(settings).to_manifest(),
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
def test_ctrl_c_to_a_sweep_stops_it_and_its_worker_and_a_rerun_continues_the_run_to_its_bytes(
    tmp_path: Path, tiny_runs: TinyRuns
) -> None:
    """Ctrl-C to a sweep's process group, as a terminal sends it: the sweep and its worker
    end in seconds (exit 130, no traceback, nothing left), the run is marked interrupted
    and no summary is claimed. The same command again continues that run in its own
    directory from its checkpoint and ends with an uninterrupted run's bytes.

    On the session's server: a command's temporary server under Ctrl-C is
    tests/test_signals.py's, a sweep's under kill -9 tests/test_prefect_server.py's."""
    from tests.test_resume_cache import SIX_EPOCHS_K2, _wait_for_checkpoint, six_epochs_k2
    from tests.test_signals import _processes_with_home, _start

    sweep_dir = tmp_path / "sweep"
    # seed 0 with the K = 2 settings: the session's uninterrupted run of them is the reference
    args = [*TINY, *SIX_EPOCHS_K2, "--seeds", "0", "--sweep-dir", str(sweep_dir)]
    cmd = _start("flows.sweep", args, tmp_path / "cmd", tiny_runs.api_url)  # a shell job
    try:
        run_dir = _wait_for_checkpoint(sweep_dir, 1)
        cmd.signal(signal.SIGINT, to_group=True)  # the worker included, as a terminal does
        _, gone = cmd.wait_gone()
    finally:
        cmd.kill_leftovers()
    err = cmd.stderr
    assert cmd.proc.returncode == 130, err
    assert "Traceback" not in err and "leaked semaphore" not in err, err
    assert gone, f"left running: {_processes_with_home(cmd.home)}"
    interrupted = json.loads((run_dir / "manifest.json").read_text())
    assert interrupted["status"] == "interrupted"
    assert "train" not in interrupted["stages"]  # the Ctrl-C landed inside training
    assert not (sweep_dir / "summary.json").exists()  # an interrupted sweep claims no summary

    rerun = run_module(
        "flows.sweep", args, cwd=tmp_path, prefect_home=cmd.home,
        env={"PREFECT_API_URL": tiny_runs.api_url}, timeout=600,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    runs = sorted(p for p in sweep_dir.iterdir() if (p / "manifest.json").is_file())
    assert runs == [run_dir], "the rerun trained in a new run directory"
    final = json.loads((run_dir / "manifest.json").read_text())
    assert final["status"] == "complete"
    assert [r["from_status"] for r in final["resumed"]] == ["interrupted"]
    assert final["stages"]["train"]["info"]["resumed_after_epoch"] >= 1
    reference = six_epochs_k2(tiny_runs)
    fingerprints = {k: v["fingerprint"] for k, v in final["stages"].items()}
    assert fingerprints == reference.fingerprints()
    (record,) = json.loads((sweep_dir / "summary.json").read_text())["runs"]
    assert record["run_dir"] == str(run_dir) and record["resumed"] is True
