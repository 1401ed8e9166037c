"""The leaderboard: one Prefect table artifact per output folder, one row per run in it.

Key `leaderboard-<folder name>-<hash of its absolute path>`: every run into the same folder
publishes under the same key, so the artifact's latest version (what the UI's Artifacts
page shows) holds every run there; another folder, e.g. a sweep's, has its own board.

Each run rebuilds the table from the manifests on disk when it finishes, rather than
appending its own row to the previous version: concurrent runs cannot lose each other's
rows (there is no read-modify-write of the artifact), a manifest is written atomically (a
half-written one is never read), and a run whose publish was lost (killed, no server)
appears on the next run's board. Two runs finishing in the same instant may each miss
the other; the next run into the folder lists both.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from seedtrail.core.errors import InputError
from seedtrail.core.pipeline_table import EPOCH_STAGE
from seedtrail.run.manifest import MANIFEST, Manifest, read_manifest
from seedtrail.run.report import macro_f1, short

#: Newest first, at most this many rows (a folder of thousands of runs stays a small artifact).
MAX_ROWS = 500
DIGITS = 4


def leaderboard_key(output_dir: Path) -> str:
    """`leaderboard-runs-1a2b3c4d`: Prefect keys are lowercase letters, digits and dashes."""
    path = Path(output_dir).resolve()
    name = re.sub(r"[^a-z0-9]+", "-", path.name.lower()).strip("-")[:40] or "root"
    digest = hashlib.blake2b(str(path).encode(), digest_size=4).hexdigest()
    return f"leaderboard-{name}-{digest}"


def _row(m: Manifest) -> dict[str, Any]:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, DIGITS)

    train = m.stage(EPOCH_STAGE)
    # Narrow columns first (the UI's table scrolls sideways past ~7); the path last.
    return {
        "run": m.run_id,
        "seed": m.settings.seed,
        "status": m.status,
        "accuracy": rounded(m.metrics.test_accuracy),
        "loss": rounded(m.metrics.test_loss),
        "macro_f1": rounded(macro_f1(m.metrics)),
        "fingerprint": short(train.fingerprint) if train else None,
        "seconds": round(sum(st.duration_s for st in m.stages.values()), 1),
        "run_dir": m.run_dir,
    }


def leaderboard_rows(output_dir: Path) -> list[dict[str, Any]]:
    """One row per run directory under `output_dir`, newest first; unreadable ones are skipped."""
    manifests = []
    for mf in Path(output_dir).glob(f"*/{MANIFEST}"):
        try:
            manifests.append(read_manifest(mf.parent))
        except InputError:  # not a run, or corrupt: not ours to judge here (compare does)
            continue
    manifests.sort(key=lambda m: (m.started_at or "", m.run_id), reverse=True)
    return [_row(m) for m in manifests[:MAX_ROWS]]


def publish_leaderboard(output_dir: Path) -> str:
    """Create the folder's leaderboard artifact (inside a flow run); returns its key."""
    from prefect.artifacts import create_table_artifact

    rows = leaderboard_rows(output_dir)
    key = leaderboard_key(output_dir)
    complete = sum(r["status"] == "complete" for r in rows)
    create_table_artifact(
        table=rows,
        key=key,
        description=f"{len(rows)} run{'' if len(rows) == 1 else 's'} in {Path(output_dir).resolve()} "
        f"({complete} complete), "
        "newest first",
    )
    return key
