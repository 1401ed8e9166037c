"""Seed sweeps, the pure part: which settings each run gets, and statistics over seeds.

Seed assignment (`--vary X`, sweep seed s, base settings B):

- `all`: run s is B with root seed = s, i.e. exactly `python -m flows.train --seed s`
  with B's other flags (pinned stage seeds in B stay pinned).
- a stage X: run s keeps B's root seed and pins seeds.X = the seed root s derives
  for X (`SeedPlan.derive(s)[X]`). The varied stage gets what `--seed s` would
  give it; every other stage keeps B's seeds, so only that source of randomness
  moves across the sweep.

No Prefect, no TensorFlow here: everything is testable as plain functions.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seedtrail.core.errors import InputError
from seedtrail.core.fingerprint import fingerprint_json
from seedtrail.core.pipeline_table import EPOCH_STAGE, VARY_STAGES
from seedtrail.core.tables import markdown_table
from seedtrail.run.manifest import Metrics
from seedtrail.run.rundir import settings_fingerprint
from settings.model import MAX_SEED, RunSettings
from settings.seeds import SeedPlan

# Sources of randomness a sweep can vary on its own (the registry's), or "all": the root seed.
VARY_CHOICES: tuple[str, ...] = (*VARY_STAGES, "all")
MAX_SWEEP_RUNS = 10_000


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: which source varies, the sweep seed, and its full settings."""

    vary: str
    seed: int
    settings: RunSettings

    @property
    def label(self) -> str:
        return f"{self.vary}/seed{self.seed}"


def parse_seeds(text: str) -> list[int]:
    """`0,1,2` or ranges `0-3,7` -> [0, 1, 2, 3, 7]; duplicates dropped, order kept."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo_s, hi_s = part.split("-", 1)
                lo, hi = int(lo_s), int(hi_s)
                if hi < lo:
                    raise InputError(f"--seeds: empty range {part!r}")
                if hi - lo >= MAX_SWEEP_RUNS:
                    raise InputError(
                        f"--seeds: range {part!r} has more than {MAX_SWEEP_RUNS} seeds"
                    )
                values = range(lo, hi + 1)
            else:
                values = range(int(part), int(part) + 1)
        except ValueError:
            raise InputError(f"--seeds: not a seed or range: {part!r}") from None
        for s in values:
            if not 0 <= s <= MAX_SEED:
                raise InputError(f"--seeds: seed {s} is outside 0..{MAX_SEED}")
            if s not in seeds:
                seeds.append(s)
    if not seeds:
        raise InputError("--seeds: no seeds given")
    return seeds


def seed_list(seeds: str | None, n_seeds: int | None, base_seed: int) -> list[int]:
    """The sweep's seeds: `--seeds` as given, or `--n-seeds N` from `--base-seed` on."""
    if seeds is not None and n_seeds is not None:
        raise InputError("--seeds and --n-seeds: give one of them, not both")
    if seeds is not None:
        return parse_seeds(seeds)
    n = 4 if n_seeds is None else n_seeds
    if not 1 <= n <= MAX_SWEEP_RUNS:
        raise InputError(f"--n-seeds: must be between 1 and {MAX_SWEEP_RUNS} (got {n})")
    if not 0 <= base_seed <= MAX_SEED - n + 1:
        raise InputError(f"--base-seed: {base_seed} + {n} seeds would leave 0..{MAX_SEED}")
    return list(range(base_seed, base_seed + n))


def parse_vary(text: str) -> list[str]:
    """`model` or `model,data` -> stages, in the order given, without duplicates."""
    vary: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part not in VARY_CHOICES:
            raise InputError(
                f"--vary: unknown source {part!r} (choose from {', '.join(VARY_CHOICES)})"
            )
        if part not in vary:
            vary.append(part)
    if not vary:
        raise InputError("--vary: no source given")
    return vary


def budget_threads(base: RunSettings, workers: int, cores: int) -> RunSettings:
    """Each of `workers` runs at once gets its share of the cores as inter-op threads.

    Only when the settings leave the count to the machine (it never changes a byte, so the
    runs' settings fingerprints and the sweep directory stay the same): `--workers 2` on 2
    cores runs two processes of one inter-op thread each, not two of two.
    """
    if base.determinism.inter_op_threads is not None:
        return base
    share = base.determinism.model_copy(update={"inter_op_threads": max(1, cores // workers)})
    return base.model_copy(update={"determinism": share})


def settings_for(base: RunSettings, vary: str, seed: int, output_dir: Path) -> RunSettings:
    """The settings of sweep run `seed` varying `vary` (see the module docstring)."""
    data = base.model_dump()
    data["output_dir"] = output_dir
    if vary == "all":
        data["seed"] = seed
    elif vary in VARY_STAGES:
        if getattr(base.seeds, vary) is not None:
            raise InputError(
                f"--vary {vary}: seeds.{vary} is pinned in the settings; unpin it or vary another source"
            )
        data["seeds"] = {**data["seeds"], vary: SeedPlan.derive(seed)[vary]}
    else:
        raise InputError(f"--vary: unknown source {vary!r}")
    return RunSettings.model_validate(data)


def plan_runs(
    base: RunSettings, vary: Sequence[str], seeds: Sequence[int], output_dir: Path
) -> list[PlannedRun]:
    return [PlannedRun(v, s, settings_for(base, v, s, output_dir)) for v in vary for s in seeds]


# ---- statistics -------------------------------------------------------------------------


def t_critical_95(df: int) -> float:
    """Two-sided 95% Student t quantile (scipy, a dependency of scikit-learn)."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def describe(values: Sequence[float]) -> dict[str, float | int | None]:
    """n, mean, sample std (ddof=1), min, max and the t-based 95% CI of the mean.

    CI95 = mean ± t(0.975, n-1) · std / sqrt(n): the interval for the mean over
    seeds, assuming roughly normal per-seed values. std and CI need n >= 2.
    """
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None,
                "ci95_low": None, "ci95_high": None}  # fmt: skip
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if n >= 2 else None
    half = None if std is None else t_critical_95(n - 1) * std / math.sqrt(n)
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "min": min(values),
        "max": max(values),
        "ci95_low": None if half is None else mean - half,
        "ci95_high": None if half is None else mean + half,
    }


# Below this many seeds a t-interval is too wide to say much (t(0.975, 3) = 3.18).
MIN_SEEDS_FOR_CI = 5
# Metrics that live in [0, 1]: a t-interval (a normal approximation) can leave that range.
UNIT_METRICS = ("accuracy", "f1", "precision", "recall")


def ci_note(metric: str, d: Mapping[str, Any], short: bool = False) -> str:
    """Why a CI95 says little, or "" (few seeds; an interval of a [0, 1] metric leaving [0, 1]).

    `short`: a few words, for a table cell (the UI's tables do not wrap).
    """
    n, notes = d.get("n") or 0, []
    if n < 2:
        return "no CI: n < 2" if short else "no CI95: needs at least 2 completed runs"
    if n < MIN_SEEDS_FOR_CI:
        notes.append(
            f"n={n}: CI wide"
            if short
            else f"only {n} seeds: CI95 very wide, use at least {MIN_SEEDS_FOR_CI}"
        )
    low, high = d.get("ci95_low"), d.get("ci95_high")
    if any(u in metric for u in UNIT_METRICS) and low is not None and (low < 0 or high > 1):
        notes.append(
            "leaves [0, 1]"
            if short
            else "interval leaves [0, 1]: the t-interval is a normal approximation"
        )
    return "; ".join(notes)


def ci_warnings(summary: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """One warning per (source, metric) whose CI95 says little."""
    return [
        f"{vary} {metric}: {note}"
        for vary, by_metric in summary.items()
        for metric, d in by_metric.items()
        if (note := ci_note(metric, d))
    ]


def run_metrics(metrics: Metrics) -> dict[str, float]:
    """The float metrics of one run that a sweep summarises (plus macro F1 from per_class)."""
    out = {k: v for k, v in metrics.scalars().items() if isinstance(v, float)}
    if metrics.per_class:
        out["test_macro_f1"] = statistics.fmean(c.f1 for c in metrics.per_class.values())
    return out


def summarize(runs: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """vary -> metric -> describe(values over that source's completed runs)."""
    values: dict[str, dict[str, list[float]]] = {}
    for r in runs:
        by_metric = values.setdefault(r["vary"], {})
        if r.get("status") != "complete":
            continue
        for k, v in r.get("metrics", {}).items():
            by_metric.setdefault(k, []).append(v)
    return {
        vary: {m: describe(vals) for m, vals in sorted(by_metric.items())}
        for vary, by_metric in values.items()
    }


def default_sweep_dir(base: RunSettings, vary: Sequence[str]) -> Path:
    # Not the seeds: rerunning with more seeds reuses (resumes) the finished ones.
    key = fingerprint_json({"settings": settings_fingerprint(base), "vary": list(vary)})
    return base.output_dir / f"sweep-{'+'.join(vary)}-{key[:8]}"


# ---- tables -----------------------------------------------------------------------------


def _num(x: Any, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _short_metric(name: str) -> str:
    """`test_accuracy` -> `accuracy`: every sweep metric is a test metric; narrow headers."""
    return name.removeprefix("test_")


def runs_table(runs: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: one row per run with status, metrics and the final-weights fingerprint."""
    metrics = sorted({k for r in runs for k in r.get("metrics", {})})
    head = ["vary", "seed", "status", *map(_short_metric, metrics), "fingerprint", "run / error"]
    rows = []
    for r in runs:
        fp = (r.get("fingerprints") or {}).get(EPOCH_STAGE)
        # the run id without its date and time (summary.json has the whole path): narrower
        name = Path(r.get("run_dir") or "-").name
        where = r.get("error") or re.sub(r"^\d{8}-\d{6}-", "…", name)
        cells = [
            r["vary"],
            str(r["seed"]),
            r["status"] + (" (resumed)" if r.get("resumed") else ""),
            *(_num(r.get("metrics", {}).get(m)) for m in metrics),
            f"`{fp[:12]}`" if fp else "-",
            str(where),
        ]
        rows.append(cells)
    return markdown_table(head, rows)


def stats_table(summary: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """Markdown: per metric, one row per varied source, side by side; notes below the table.

    8 narrow columns (the Prefect UI scrolled the 10-column table sideways): the interval
    and the range one cell each, and a note only as its number, its text under the table.
    """
    head = ["metric", "vary", "n", "mean", "std", "CI95", "range", "note"]
    rows, notes = [], []
    metrics = sorted({m for by_metric in summary.values() for m in by_metric})
    for m in metrics:
        for vary, by_metric in summary.items():
            d = by_metric.get(m)
            if d is None:
                continue
            note = ci_note(m, d)
            if note and note not in notes:
                notes.append(note)
            ci = (
                f"[{_num(d['ci95_low'])}, {_num(d['ci95_high'])}]"
                if d.get("ci95_low") is not None
                else "-"
            )
            rows.append(
                [_short_metric(m), vary, str(d["n"]), _num(d["mean"]), _num(d["std"]), ci,
                 f"{_num(d['min'])} to {_num(d['max'])}",
                 f"({notes.index(note) + 1})" if note else "-"]
            )  # fmt: skip
    footnotes = [f"({i}) {note}" for i, note in enumerate(notes, 1)]
    return "\n".join([markdown_table(head, rows), *(["", *footnotes] if footnotes else [])])
