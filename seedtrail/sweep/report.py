"""A sweep's report: summary.json (written last: the sign the report is whole), summary.md,
distribution.png, and the Prefect artifacts (two tables and the markdown summary).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from seedtrail.core import atomic
from seedtrail.core.pipeline_table import EPOCH_STAGE
from seedtrail.core.plots import plot_distribution
from seedtrail.run.manifest import COMPLETE
from seedtrail.run.report import png_markdown
from seedtrail.run.rundir import settings_fingerprint
from seedtrail.sweep.plan import ci_note, runs_table, stats_table, summarize
from settings.model import RunSettings

SUMMARY_JSON, SUMMARY_MD, DISTRIBUTION_PNG = "summary.json", "summary.md", "distribution.png"


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
    plot_distribution(runs, stats, sweep_dir / DISTRIBUTION_PNG)
    atomic.write_text(sweep_dir / SUMMARY_MD, md)
    atomic.write_json(sweep_dir / SUMMARY_JSON, summary)
    summary["markdown"] = md
    return summary


DIGITS = 4  # table artifacts: 4 decimals, as the markdown tables (16 digits cut the columns)


def rounded(value: Any) -> Any:
    return round(value, DIGITS) if isinstance(value, float) else value


def publish_artifacts(summary: dict[str, Any]) -> None:
    # Narrow tables (the UI's tables scroll sideways and do not wrap): short metric names,
    # the interval in one cell, short notes (the summary has them in full), 12-hex fingerprints.
    rows = [
        {"metric": m.removeprefix("test_"), "vary": v, "n": d["n"],
         "mean": rounded(d["mean"]), "std": rounded(d["std"]),
         "ci95": None if d.get("ci95_low") is None
         else f"[{rounded(d['ci95_low'])}, {rounded(d['ci95_high'])}]",
         "note": ci_note(m, d, short=True)}
        for v, by_metric in summary["statistics"].items()
        for m, d in by_metric.items()
    ]  # fmt: skip
    create_table_artifact(
        table=rows, key="sweep-statistics", description="Metrics across seeds, per varied source"
    )
    errors = any(r.get("error") for r in summary["runs"])
    create_table_artifact(
        table=[
            {
                "vary": r["vary"],
                "seed": r["seed"],
                "status": r["status"],
                **{k.removeprefix("test_"): rounded(v) for k, v in r.get("metrics", {}).items()},
                "fingerprint": ((r.get("fingerprints") or {}).get(EPOCH_STAGE) or "")[:12] or None,
                "run": Path(r["run_dir"]).name if r.get("run_dir") else None,
                **({"error": r.get("error")} if errors else {}),
            }
            for r in summary["runs"]
        ],
        key="sweep-runs",
        description="One row per run of the sweep",
    )
    picture = png_markdown(Path(summary["sweep_dir"]) / DISTRIBUTION_PNG, "metric distribution")
    complete, n = summary["complete"], len(summary["runs"])
    create_markdown_artifact(
        key="sweep-summary",
        markdown=f"{summary['markdown']}\n## Distribution over seeds\n\n{picture}\n",
        description=f"sweep {Path(summary['sweep_dir']).name}: {complete} of {n} runs complete",
    )
