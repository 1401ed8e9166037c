"""Running a sweep's seeds: each a `train` flow run inside a task, in worker processes.

TensorFlow's thread pools are fixed per process, so training never happens in
the sweep's own process: our process-pool task runner (or a Dask cluster) runs the
`train-seed` tasks. Results are collected as they finish; a failed seed is
recorded, never fatal.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import task

from seedtrail.prefect.runner import ProcessTaskRunner, as_completed
from seedtrail.run.manifest import parse_manifest
from seedtrail.run.report import headline
from seedtrail.run.rundir import settings_fingerprint
from seedtrail.sweep.plan import PlannedRun
from seedtrail.sweep.resume import failed_manifest, run_record
from settings.model import RunSettings


@task(name="train-seed", retries=0)
def train_seed(settings: RunSettings, resume: str = "") -> dict[str, Any]:
    """One training run, as a `train` subflow, in whatever process executes this task.

    `resume`: an interrupted run directory of these settings to continue in place.
    """
    # Loaded here, in the worker, by entrypoint: a flow pickled by value with the task
    # would lose its module's globals (pydantic could not resolve its annotations).
    from seedtrail.prefect.deployments import TRAIN_ENTRYPOINT, load_flow
    from seedtrail.prefect.parameters import settings_parameters
    from seedtrail.prefect.runner import ignore_sigint_in_worker
    from seedtrail.runtime.quiet import set_quiet_environment

    set_quiet_environment()
    ignore_sigint_in_worker()  # the sweep stops its workers itself (prefect/runner.py)
    started = time.time()
    manifest = load_flow(TRAIN_ENTRYPOINT)(**settings_parameters(settings), resume=resume)
    # Where and when it ran: the sweep's proof that runs had a process each and never overlapped.
    process = {"pid": os.getpid(), "started": started, "finished": time.time()}
    return {**manifest, "process": process}


def task_runner(workers: int, dask_address: str | None):
    if dask_address is not None:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address)
    # The CLI's pool reuses a worker for its next seed (one TF import per worker, not per
    # run: ~6-10 s each on 2 cores); every stage reseeds, so the bytes are the same. The
    # flow's declared runner (served, worker and scheduled runs) starts one per run.
    # Workers stopped on Ctrl-C/SIGTERM leave their queue semaphores to multiprocessing's
    # resource tracker (its own process, reading this at start), which cleans them up
    # but warns about "leaked semaphore objects": expected here, not a user's concern.
    os.environ.setdefault("PYTHONWARNINGS", "ignore:resource_tracker:UserWarning")
    return ProcessTaskRunner(max_workers=workers, max_tasks_per_child=None)


def record_finished(
    futures: dict[int, Any],
    planned: list[PlannedRun],
    records: list[dict[str, Any] | None],
    sweep_dir: Path,
    log: Any,
) -> Iterator[int]:
    """Fill `records` as runs finish; a failed seed is recorded, never fatal."""
    for i, fut in as_completed(futures):
        p = planned[i]
        try:
            manifest = fut.result()
            run = parse_manifest(manifest, run_dir=manifest["run_dir"])
            continued = bool(run.resumed)  # an interrupted run, continued from its checkpoint
            records[i] = {**run_record(p, run, continued), "process": manifest.get("process")}
            log.info("%s: complete · %s", p.label, headline(run))
        except Exception as err:  # one failed seed must not lose the others
            failed = failed_manifest(sweep_dir, settings_fingerprint(p.settings))
            error = (failed and failed.error) or f"{type(err).__name__}: {err}"
            log.error("%s: failed: %s", p.label, error)
            records[i] = {
                "vary": p.vary,
                "seed": p.seed,
                "status": "failed",
                "error": " ".join(str(error).split())[:500],
                "run_dir": failed.run_dir if failed else None,
                "settings_fingerprint": settings_fingerprint(p.settings),
            }
        yield i
