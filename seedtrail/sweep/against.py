"""`--against-sweep DIR`: a sweep's seed-to-seed standard deviation, as the unit of a metric
difference ("accuracy differs by 0.004 = 0.2 σ of seed variance: within seed noise").

The sweep must be of the reference run's settings, seed aside: its spread then says how
much the metric moves when only the randomness changes, which is what a difference in bytes
should be measured against. Anything else is refused with one line naming the flag.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from seedtrail.compare.diff import diff_flat
from seedtrail.core.errors import InputError
from seedtrail.run.manifest import Manifest

#: The sweep's summary (report.SUMMARY_JSON, written last); not imported from report.py,
#: which loads Prefect: flags are checked before Prefect starts.
SUMMARY_JSON = "summary.json"

FLAG = "--against-sweep"
#: What a sweep varies (the root seed, pinned stage seeds) and where files go: not its settings.
NOT_SETTINGS = frozenset({"seed", "seeds", "output_dir"})


@dataclass(frozen=True)
class SeedNoise:
    std: dict[str, float]  # metric -> seed-to-seed std (ddof=1)
    source: str  # e.g. "sweep-all-1a2b3c4d (vary all, 5 runs)"


def read_sweep(sweep_dir: Path) -> dict:
    summary = Path(sweep_dir) / SUMMARY_JSON
    if not Path(sweep_dir).is_dir():
        raise InputError(f"{FLAG} {sweep_dir}: no such directory")
    try:
        data = json.loads(summary.read_text())
    except FileNotFoundError:
        raise InputError(
            f"{FLAG} {sweep_dir}: holds no sweep (no {SUMMARY_JSON}; is the sweep finished?)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{FLAG} {summary}: unreadable sweep summary ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("statistics"), dict):
        raise InputError(f"{FLAG} {summary}: not a seedtrail sweep summary")
    return data


def seed_noise(sweep_dir: Path, reference: Manifest) -> SeedNoise:
    """The sweep's per-metric std, checked to be a sweep of `reference`'s settings."""
    data = read_sweep(sweep_dir)
    base = data.get("base_settings")
    if not isinstance(base, dict):
        raise InputError(f"{FLAG} {sweep_dir}: the sweep summary records no settings")
    diffs = diff_flat(reference.settings_json(), base, NOT_SETTINGS)
    if diffs:
        shown = "; ".join(f"{d.key}: {d.a} (run) vs {d.b} (sweep)" for d in diffs[:3])
        more = f" (+{len(diffs) - 3} more)" if len(diffs) > 3 else ""
        raise InputError(f"{FLAG} {sweep_dir}: a sweep of other settings ({shown}{more})")
    stats: dict = data["statistics"]
    vary = "all" if "all" in stats else next(iter(stats), None)
    by_metric = stats.get(vary) or {}
    std = {
        m: float(d["std"])
        for m, d in by_metric.items()
        if isinstance(d, dict) and isinstance(d.get("std"), int | float)
    }
    if not std:
        raise InputError(
            f"{FLAG} {sweep_dir}: the sweep has no seed-to-seed spread "
            "(fewer than 2 completed runs)"
        )
    n = max((d.get("n", 0) for d in by_metric.values() if isinstance(d, dict)), default=0)
    return SeedNoise(std, f"{Path(sweep_dir).name} (vary {vary}, {n} runs)")
