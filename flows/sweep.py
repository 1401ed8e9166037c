"""`python -m flows.sweep`: the training flow once per seed, in worker processes, plus statistics.

    python -m flows.sweep --seeds 0,1,2,3 [--vary model,data] [--workers 2] [training flags...]

Every training flag of `python -m flows.train` is accepted and sets the base
settings. Which settings each run gets is defined in `seedtrail.sweep`; with
`--vary all` (the default) run s is exactly `python -m flows.train --seed s`.

Each run is a `train` flow run inside a task executed by a process pool (or a
Dask cluster): TensorFlow's thread pools are fixed per process, so training
never happens in the sweep's own process. A worker process may run several
seeds one after another; they share the settings' thread counts, and every
stage reseeds itself, so where a seed ran does not change its bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows._cli import EXIT_FAILED, EXIT_OK, run_cli
from flows.train import preflight, settings_fingerprint
from seedtrail import atomic
from seedtrail.errors import InputError
from seedtrail.fingerprint import fingerprint_json
from seedtrail.manifest import COMPLETE, MANIFEST, Manifest, NotARun, parse_manifest, read_manifest
from seedtrail.registry import STAGES
from seedtrail.sweep import (
    VARY_CHOICES,
    PlannedRun,
    parse_vary,
    plan_runs,
    run_metrics,
    runs_table,
    seed_list,
    stats_table,
    summarize,
)
from settings.cli import load_settings
from settings.model import RunSettings
from settings.seeds import SeedPlan

PROG = "python -m flows.sweep"
DESCRIPTION = "Run the training flow once per seed and summarise the spread of the metrics."
SUMMARY_JSON, SUMMARY_MD, DISTRIBUTION_PNG = "summary.json", "summary.md", "distribution.png"


# ---- command line -----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise InputError(message)


def sweep_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        add_help=False,
        allow_abbrev=False,  # `--seed` is a settings flag, not short for `--seeds`
        epilog="Every other flag is a training setting, as for python -m flows.train (below).",
    )
    g = p.add_argument_group("sweep")
    g.add_argument("--seeds", help="Seeds to run: 0,1,2 or ranges like 0-7.")
    g.add_argument("--n-seeds", type=int, help="Run N seeds from --base-seed on (default 4).")
    g.add_argument("--base-seed", type=int, default=0, help="First seed of --n-seeds (default 0).")
    g.add_argument(
        "--vary",
        default="all",
        help=f"Sources of randomness to vary, comma-separated: {', '.join(VARY_CHOICES)} "
        "(default all = the root seed). One stage varies only that stage's seed and keeps "
        "every other stage at the base settings' seeds.",
    )
    g.add_argument(
        "--workers", type=int, default=1, help="Runs at once, each in its own process (default 1)."
    )
    g.add_argument(
        "--dask-address",
        help="Run on an existing Dask cluster (tcp://HOST:PORT) instead of local processes.",
    )
    g.add_argument(
        "--sweep-dir",
        type=Path,
        help="Sweep directory (default <output-dir>/sweep-<vary>-<hash of the settings>).",
    )
    return p


@dataclass(frozen=True)
class SweepArgs:
    base: RunSettings
    seeds: list[int]
    vary: list[str]
    workers: int
    dask_address: str | None
    sweep_dir: Path


def default_sweep_dir(base: RunSettings, vary: Sequence[str]) -> Path:
    # Not the seeds: rerunning with more seeds reuses (resumes) the finished ones.
    key = fingerprint_json({"settings": settings_fingerprint(base), "vary": list(vary)})
    return base.output_dir / f"sweep-{'+'.join(vary)}-{key[:8]}"


def _check_dask_address(address: str) -> None:
    """One line instead of a 30 s connect timeout deep inside distributed."""
    parts = urlsplit(address)
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or parts.port is None:
        raise InputError(f"--dask-address: expected tcp://HOST:PORT (got {address!r})")
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=5):
            pass
    except OSError as err:
        raise InputError(
            f"--dask-address: cannot reach the Dask scheduler at {address} ({err.strerror or err})"
        ) from None


def parse_args(argv: Sequence[str]) -> SweepArgs:
    parser = sweep_parser()
    argv = list(argv)
    if "-h" in argv or "--help" in argv:
        parser.print_help()
        print()
        load_settings(["--help"], prog=PROG, description=DESCRIPTION)  # prints, exits 0
        sys.exit(0)
    ns, rest = parser.parse_known_args(argv)
    base = load_settings(rest, prog=PROG, description=DESCRIPTION)
    problems: list[str] = []
    if not 1 <= ns.workers <= 256:
        problems.append(f"--workers: must be between 1 and 256 (got {ns.workers})")
    try:
        seeds = seed_list(ns.seeds, ns.n_seeds, ns.base_seed)
    except InputError as err:
        problems += err.problems
        seeds = []
    try:
        vary = parse_vary(ns.vary)
    except InputError as err:
        problems += err.problems
        vary = []
    if problems:
        raise InputError(problems)
    if ns.dask_address is not None:
        _check_dask_address(ns.dask_address)
    sweep_dir = ns.sweep_dir or default_sweep_dir(base, vary)
    return SweepArgs(base, seeds, vary, ns.workers, ns.dask_address, sweep_dir)


# ---- resume -----------------------------------------------------------------------------


def completed_runs(sweep_dir: Path) -> dict[str, Manifest]:
    """settings fingerprint -> manifest of a finished run in the sweep directory.

    Finished means: status "complete" (the last write of a run), a fingerprint for
    every stage and the saved model on disk. Anything else is run again.
    """
    found: dict[str, Manifest] = {}
    for m in _manifests(sweep_dir):
        model = m.artifacts.get("model")
        if (
            m.complete
            and all(s in m.stages and m.stages[s].fingerprint for s in STAGES)
            and model
            and (Path(m.run_dir) / model).is_file()
            and m.settings_fingerprint
        ):
            found[m.settings_fingerprint] = m
    return found


def _manifests(sweep_dir: Path) -> Iterator[Manifest]:
    """Every readable run manifest in the sweep directory (an unreadable one is rerun)."""
    if not sweep_dir.is_dir():
        return
    for mf in sorted(sweep_dir.glob(f"*/{MANIFEST}")):
        try:
            yield read_manifest(mf.parent)
        except NotARun:
            continue


def failed_manifest(sweep_dir: Path, settings_fp: str) -> Manifest | None:
    """The newest unfinished manifest of these settings (to report its error)."""
    newest = None
    for m in _manifests(sweep_dir):
        if m.settings_fingerprint == settings_fp and not m.complete:
            newest = m
    return newest


def run_record(planned: PlannedRun, manifest: Manifest, resumed: bool) -> dict[str, Any]:
    return {
        "vary": planned.vary,
        "seed": planned.seed,
        "status": COMPLETE,
        "resumed": resumed,
        "run_dir": manifest.run_dir,
        "settings_fingerprint": manifest.settings_fingerprint,
        "stage_seeds": manifest.seeds.stages,
        "fingerprints": {k: v.fingerprint for k, v in manifest.stages.items()},
        "metrics": run_metrics(manifest.metrics),
    }


# ---- the flow ---------------------------------------------------------------------------


@task(name="train-seed", retries=0)
def train_seed(settings: RunSettings) -> dict[str, Any]:
    """One training run, as a `train` subflow, in whatever process executes this task."""
    # Import here: the task travels to the worker pickled by value, and a flow pickled
    # by value loses its module's globals (pydantic could not resolve its annotations).
    from flows.train import train_flow
    from seedtrail.quiet import set_quiet_environment

    set_quiet_environment()
    return train_flow(settings)


def sweep_run_name() -> str:
    from prefect.runtime import flow_run

    p = flow_run.parameters
    seeds = p.get("seeds") or []
    return f"sweep-{'+'.join(p.get('vary') or [])}-{len(seeds)}seeds"


@flow(name="sweep", flow_run_name=sweep_run_name, validate_parameters=True)
def sweep_flow(
    base: RunSettings,
    seeds: list[int],
    vary: list[str],
    sweep_dir: Path,
) -> dict[str, Any]:
    """Train once per (source, seed); skip runs finished before; summarise and plot."""
    log = get_run_logger()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    planned = plan_runs(base, vary, seeds, sweep_dir)
    done = completed_runs(sweep_dir)

    records: list[dict[str, Any] | None] = []
    futures = {}
    for i, p in enumerate(planned):
        fp = settings_fingerprint(p.settings)
        if fp in done:
            log.info("%s: finished before (%s), skipped", p.label, Path(done[fp].run_dir).name)
            records.append(run_record(p, done[fp], resumed=True))
            continue
        records.append(None)
        futures[i] = train_seed.with_options(task_run_name=f"train-{p.vary}-seed{p.seed}").submit(
            p.settings
        )

    try:
        finished = list(_record_finished(futures, planned, records, sweep_dir, log))
    except KeyboardInterrupt:
        _stop_local_workers()  # else the pool would wait for (or even start) more runs
        raise
    log.info("%d runs finished in this invocation", len(finished))

    runs = [r for r in records if r is not None]
    summary = write_summary(sweep_dir, base, seeds, vary, runs)
    publish_artifacts(summary)
    return summary


def _stop_local_workers() -> None:
    """Terminate this process's pool workers; their unfinished runs stay marked incomplete."""
    import multiprocessing

    for child in multiprocessing.active_children():
        child.terminate()


def _record_finished(
    futures: dict[int, Any],
    planned: list[PlannedRun],
    records: list[dict[str, Any] | None],
    sweep_dir: Path,
    log: Any,
) -> Iterator[int]:
    """Fill `records` as runs finish; a failed seed is recorded, never fatal."""
    for i, fut in _as_completed(futures):
        p = planned[i]
        try:
            manifest = fut.result()
            records[i] = run_record(p, parse_manifest(manifest, run_dir=manifest["run_dir"]), False)
            log.info("%s: complete", p.label)
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


def _as_completed(futures: dict[int, Any]) -> Iterator[tuple[int, Any]]:
    """Futures as they finish. Polls: a blocking result() would swallow Ctrl-C."""
    pending = dict(futures)
    while pending:
        ready = [i for i, f in pending.items() if f.wrapped_future.done()]
        if not ready:
            time.sleep(0.25)
        for i in ready:
            yield i, pending.pop(i)


def write_summary(
    sweep_dir: Path,
    base: RunSettings,
    seeds: list[int],
    vary: list[str],
    runs: list[dict[str, Any]],
) -> dict[str, Any]:
    stats = summarize(runs)
    failed = [r for r in runs if r["status"] != COMPLETE]
    summary = {
        "sweep_dir": str(sweep_dir),
        "base_settings": base.model_dump(mode="json"),
        "base_settings_fingerprint": settings_fingerprint(base),
        "vary": vary,
        "seeds": seeds,
        "seed_rule": "vary=all: root seed = s. vary=<stage>: root seed = base seed, "
        "seeds.<stage> = SeedPlan.derive(s)[<stage>], other stages at the base seeds.",
        "ci95": "mean ± t(0.975, n-1)·std/sqrt(n), std with ddof=1, over completed runs",
        "complete": len(runs) - len(failed),
        "failed": len(failed),
        "runs": runs,
        "statistics": stats,
    }
    md = "\n".join(
        [
            f"# seedtrail sweep `{sweep_dir.name}`",
            "",
            f"vary **{', '.join(vary)}** · seeds {', '.join(map(str, seeds))} · "
            f"{summary['complete']} complete, {summary['failed']} failed",
            "",
            "## Per run",
            "",
            runs_table(runs),
            "",
            "## Across seeds (CI95: t-interval of the mean)",
            "",
            stats_table(stats),
            "",
        ]
    )
    # The PNG first: summary.json is the last write, the sign a sweep's report is whole.
    plot_distribution(runs, sweep_dir / DISTRIBUTION_PNG)
    atomic.write_text(sweep_dir / SUMMARY_MD, md)
    atomic.write_json(sweep_dir / SUMMARY_JSON, summary)
    summary["markdown"] = md
    return summary


def plot_distribution(runs: list[dict[str, Any]], path: Path) -> None:
    """One panel per metric: every seed's value per varied source, with mean and CI95."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in runs if r["status"] == COMPLETE]
    metrics = sorted({m for r in done for m in r["metrics"]}) or ["(no completed runs)"]
    vary = list(dict.fromkeys(r["vary"] for r in runs))
    stats = summarize(runs)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for x, v in enumerate(vary):
            values = [
                r["metrics"][metric] for r in done if r["vary"] == v and metric in r["metrics"]
            ]
            ax.plot([x] * len(values), values, "o", alpha=0.6, markersize=5)
            d = stats.get(v, {}).get(metric)
            if d and d["ci95_low"] is not None:
                ax.errorbar(
                    x + 0.15, d["mean"], yerr=[[d["mean"] - d["ci95_low"]], [d["ci95_high"] - d["mean"]]],
                    fmt="s", color="black", capsize=4, markersize=4,
                )  # fmt: skip
        ax.set_xticks(range(len(vary)), vary)
        ax.set_xlim(-0.5, len(vary) - 0.5)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("varied source")
        ax.grid(alpha=0.3)
    fig.suptitle("per-seed values (dots), mean and 95% CI (black)", fontsize=9)
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def publish_artifacts(summary: dict[str, Any]) -> None:
    rows = [
        {"metric": m, "vary": v, **{k: d[k] for k in ("n", "mean", "std", "min", "max", "ci95_low", "ci95_high")}}
        for v, by_metric in summary["statistics"].items()
        for m, d in by_metric.items()
    ]  # fmt: skip
    create_table_artifact(
        table=rows, key="sweep-statistics", description="Metrics across seeds, per varied source"
    )
    create_table_artifact(
        table=[
            {
                "vary": r["vary"],
                "seed": r["seed"],
                "status": r["status"],
                **r.get("metrics", {}),
                "train_fingerprint": (r.get("fingerprints") or {}).get("train"),
                "error": r.get("error"),
            }
            for r in summary["runs"]
        ],
        key="sweep-runs",
        description="One row per run of the sweep",
    )
    create_markdown_artifact(key="sweep-summary", markdown=summary["markdown"])


def task_runner(workers: int, dask_address: str | None):
    if dask_address is not None:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address)
    from prefect.task_runners import ProcessPoolTaskRunner

    return ProcessPoolTaskRunner(max_workers=workers)


def _detached_server():
    """Prefect's temporary API server, started in its own session.

    A terminal Ctrl-C signals the whole foreground process group; if the API died
    with it, the sweep's last status updates would retry against a dead server for
    minutes. In its own session it outlives the interrupt and is stopped at exit.
    """
    from unittest import mock

    from prefect.server.api.server import SubprocessASGIServer

    class DetachedServer(SubprocessASGIServer):
        def _run_uvicorn_command(self):  # type: ignore[override]
            detached = functools.partial(subprocess.Popen, start_new_session=True)
            with mock.patch.object(subprocess, "Popen", detached):
                return super()._run_uvicorn_command()

    return DetachedServer()


@contextlib.contextmanager
def shared_prefect_api() -> Iterator[None]:
    """Without PREFECT_API_URL, one temporary server for the sweep and all its workers.

    Otherwise every worker process would start its own temporary server on the
    same SQLite file ("database is locked"), and the runs would not show up as
    subflows of the sweep.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    server = _detached_server()
    server.start()  # stopped at exit (atexit), as Prefect's own temporary server
    os.environ["PREFECT_API_URL"] = server.api_url  # inherited by the worker processes
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    planned = plan_runs(args.base, args.vary, args.seeds, args.sweep_dir)  # validates every run
    # The data depend on the data seed only: check each distinct one, before anything is written.
    by_data_seed = {SeedPlan.from_settings(p.settings)["data"]: p.settings for p in planned}
    for settings in by_data_seed.values():
        preflight(settings.model_copy(update={"output_dir": args.base.output_dir}))
    try:
        args.sweep_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"--sweep-dir: cannot create {args.sweep_dir} ({err.strerror})") from None
    runner = task_runner(args.workers, args.dask_address)
    try:
        with shared_prefect_api():
            summary = sweep_flow.with_options(task_runner=runner)(
                base=args.base, seeds=args.seeds, vary=args.vary, sweep_dir=args.sweep_dir
            )
    except KeyboardInterrupt:
        print(
            "\nsweep interrupted; finished runs are kept. Rerun the same command to continue.",
            file=sys.stderr,
        )
        raise
    print(summary["markdown"])
    print(f"sweep directory: {args.sweep_dir}")
    if summary["failed"]:
        print(f"{summary['failed']} of {len(summary['runs'])} runs failed", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
