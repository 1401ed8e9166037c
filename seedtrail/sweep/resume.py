"""Resuming a sweep: which runs in its directory are finished, which were interrupted, and
what a failed one said.

A rerun of the same sweep command skips every run whose settings fingerprint
has a finished run directory (status complete, every stage fingerprinted, the
model on disk). A run that was interrupted (Ctrl-C, SIGTERM) or killed (status
still "running") is continued in its own directory, from its last checkpoint, as
`flows.train --resume` would; a failed one runs again from the start.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seedtrail.core.pipeline_table import STAGES
from seedtrail.run.manifest import COMPLETE, MANIFEST, Manifest, NotARun, read_manifest
from seedtrail.run.rundir import is_locked
from seedtrail.sweep.plan import PlannedRun, run_metrics


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


#: Unfinished runs a sweep rerun continues in place; "failed" ones run again from the start.
RESUMABLE = ("interrupted", "running")


def resumable_runs(sweep_dir: Path) -> dict[str, Manifest]:
    """settings fingerprint -> the newest interrupted (or killed) run of those settings.

    A run whose lock a live process holds (another resume, a sweep still running it) is
    left out: it is that process's to finish.
    """
    found: dict[str, Manifest] = {}
    for m in _manifests(sweep_dir):  # sorted by directory name: run ids start with the time
        if m.status in RESUMABLE and m.settings_fingerprint and not is_locked(Path(m.run_dir)):
            found[m.settings_fingerprint] = m
    return found


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
