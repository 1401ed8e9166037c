"""`python -m flows.sweep`: the training flow once per seed, in worker processes, plus statistics.

    python -m flows.sweep --seeds 0,1,2,3 [--vary model,data] [--workers 2] [training flags...]

Every training flag of `python -m flows.train` is accepted and sets the base
settings. Which settings each run gets is defined in `seedtrail.sweep.plan`; with
`--vary all` (the default) run s is exactly `python -m flows.train --seed s`.

Each run is a `train` flow run inside a task executed by a process pool (or a
Dask cluster): TensorFlow's thread pools are fixed per process, so training
never happens in the sweep's own process. Served, worker-run and scheduled
sweeps start a fresh process per seed, one at a time; the CLI's `--workers N`
pool (and a Dask worker) runs seeds one after another in each of its processes.
Every run has the settings' thread counts and every stage reseeds itself, so
where a seed ran does not change its bytes.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # before the imports below (Prefect takes seconds): see check_early
    from seedtrail.cli.main import check_early
    from seedtrail.cli.sweep_args import parse_sweep_args

    check_early(parse_sweep_args)

import signal
from pathlib import Path
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger
from pydantic import Field

from seedtrail.cli.main import EXIT_FAILED, EXIT_OK, run_cli
from seedtrail.cli.sweep_args import parse_sweep_args
from seedtrail.core.errors import InputError
from seedtrail.core.store import store_dir
from seedtrail.inputs.index import persist_stat_cache
from seedtrail.prefect.names import keep_typed_name
from seedtrail.prefect.parameters import form_title
from seedtrail.prefect.runner import ProcessTaskRunner, stop_local_workers
from seedtrail.prefect.server import ensure_api
from seedtrail.prefect.signals import (
    exit_now,
    interrupt_exit_code,
    interrupt_signal,
    interruption_types,
)
from seedtrail.run.pipeline import preflight
from seedtrail.run.rundir import check_output_dir, settings_fingerprint
from seedtrail.runtime.shards import machine_threads
from seedtrail.sweep.launch import record_finished, task_runner, train_seed
from seedtrail.sweep.plan import (
    VARY_CHOICES,
    budget_threads,
    ci_warnings,
    default_sweep_dir,
    plan_runs,
)
from seedtrail.sweep.report import publish_artifacts, write_summary
from seedtrail.sweep.resume import completed_runs, resumable_runs, run_record
from settings.model import MAX_SEED, RunSettings
from settings.seeds import SeedPlan

# ---- the flow ---------------------------------------------------------------------------


def sweep_run_name() -> str:
    from prefect.runtime import flow_run

    p = flow_run.parameters
    seeds = p.get("seeds") or []
    return f"sweep-{'+'.join(p.get('vary') or [])}-{len(seeds)}seeds"


# The UI form: `vary` is a select of the sources, seeds carry their bounds.
Source = Literal[VARY_CHOICES]  # type: ignore[valid-type]
SweepSeed = Annotated[int, Field(ge=0, le=MAX_SEED)]


# The runner is part of the declaration, not set with .with_options(): a served or
# worker-run flow is reloaded from its entrypoint (seedtrail/prefect/runner.py). Each
# seed trains in a fresh worker process, never in the flow's own (TF thread pools and
# seeds are per process), one at a time (a machine trains one model at once). The CLI's
# --workers/--dask-address replace it.
@flow(
    name="sweep",
    flow_run_name=keep_typed_name(sweep_run_name),
    validate_parameters=True,
    task_runner=ProcessTaskRunner(max_workers=1, max_tasks_per_child=1),
    description="The train flow once per seed, each run in its own process, plus statistics.",
)
def sweep_flow(
    base: Annotated[RunSettings, form_title("Base settings")],
    seeds: Annotated[list[SweepSeed], Field(min_length=1, max_length=1000), form_title("Seeds")],
    vary: Annotated[list[Source], Field(min_length=1), form_title("Vary")],
    sweep_dir: Annotated[Path | None, form_title("Sweep folder")] = None,
) -> dict[str, Any]:
    """Train once per (source, seed); skip runs finished before; summarise and plot.

    Args:
        base: Settings every run starts from (a run varies only what `vary` says).
        seeds: Sweep seeds; with vary=all each is a run's root seed, else the seed whose derivation pins the varied stage.
        vary: Sources of randomness to vary: all (the root seed) or one stage's seed (data, augment, split, model, train); several give a side-by-side table.
        sweep_dir: Folder of the sweep's runs and summary; empty: <base.output_dir>/sweep-<vary>-<hash of base and vary>.
    """
    if sweep_dir is None:
        sweep_dir = default_sweep_dir(base, vary)
    log = get_run_logger()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    planned = plan_runs(base, vary, seeds, sweep_dir)
    done = completed_runs(sweep_dir)
    interrupted = resumable_runs(sweep_dir)

    records: list[dict[str, Any] | None] = []
    futures = {}
    for i, p in enumerate(planned):
        fp = settings_fingerprint(p.settings)
        if fp in done:
            log.info("%s: finished before (%s), skipped", p.label, Path(done[fp].run_dir).name)
            records.append(run_record(p, done[fp], resumed=True))
            continue
        records.append(None)
        resume = ""
        if fp in interrupted and interrupted[fp].settings == p.settings:
            resume = interrupted[fp].run_dir
            log.info("%s: continuing %s from its last checkpoint", p.label, Path(resume).name)
        futures[i] = train_seed.with_options(task_run_name=f"train-{p.vary}-seed{p.seed}").submit(
            p.settings, resume
        )

    try:
        finished = list(record_finished(futures, planned, records, sweep_dir, log))
    except interruption_types():  # Ctrl-C, or SIGTERM (Prefect raises its own in a flow)
        stop_local_workers()  # else the pool would wait for (or even start) more runs
        raise
    log.info("%d runs finished in this invocation", len(finished))

    runs = [r for r in records if r is not None]
    summary = write_summary(sweep_dir, base, seeds, vary, runs)
    for warning in ci_warnings(summary["statistics"]):
        log.warning(warning)
    publish_artifacts(summary)
    return summary


def main(argv: list[str]) -> int:
    args = parse_sweep_args(argv)
    if args.sweep_dir.exists() and not args.sweep_dir.is_dir():  # before anything is created
        raise InputError(f"--sweep-dir: {args.sweep_dir} exists and is not a directory")
    base = args.base
    if args.dask_address is None:  # local workers share this machine's cores
        base = budget_threads(base, args.workers, machine_threads())
    planned = plan_runs(base, args.vary, args.seeds, args.sweep_dir)  # validates every run
    # The data depend on the data seed only: check each distinct one, before anything is written.
    by_data_seed = {SeedPlan.from_settings(p.settings)["data"]: p.settings for p in planned}
    for settings in by_data_seed.values():
        preflight(settings.model_copy(update={"output_dir": base.output_dir}))
    check_output_dir(args.sweep_dir, "--sweep-dir")
    if args.base.data.kind == "images" and args.base.data.path is not None:
        # The runs write to the sweep folder's store: give them the hashes preflight made,
        # so the folder is hashed once for the whole sweep, not once per seed.
        persist_stat_cache(args.base.data.path, store_dir(args.sweep_dir))
    runner = task_runner(args.workers, args.dask_address)
    try:
        # One API for the sweep and its workers (they inherit PREFECT_API_URL): else each
        # worker would start a temporary server of its own on the same SQLite file.
        ensure_api()
        summary = sweep_flow.with_options(task_runner=runner)(
            base=base, seeds=args.seeds, vary=args.vary, sweep_dir=args.sweep_dir
        )
    except interruption_types() as err:
        # Again, now the flow is over: a worker the pool started meanwhile would keep
        # this process waiting at exit (multiprocessing joins its children).
        stop_local_workers(deadline_s=5.0)
        word = "terminated" if interrupt_signal(err) == signal.SIGTERM else "interrupted"
        print(
            "\nsweep interrupted; finished runs are kept. Rerun the same command to continue."
            f"\n\n{word}",
            file=sys.stderr,
        )
        exit_now(interrupt_exit_code(err))
    print(summary["markdown"])
    print(f"sweep directory: {args.sweep_dir}")
    if summary["failed"]:
        print(f"{summary['failed']} of {len(summary['runs'])} runs failed", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
