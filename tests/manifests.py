"""Hand-made manifests that match their own content, as seedtrail's writer would seal them.

Tests that build a manifest by hand, or edit a real one to stand for another run, seal
it here: readers refuse a manifest whose content does not match itself
(seedtrail/run/integrity.py), and the test is about something else.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from seedtrail.run import integrity
from seedtrail.run.manifest import MANIFEST_VERSION
from seedtrail.run.manifest_migration import recorded_settings
from settings.seeds import SeedPlan


def consistent(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with seeds, stage seeds and settings_fingerprint derived from its settings,
    its metrics as evaluate recorded them, and sealed."""
    m = copy.deepcopy(manifest)
    plan = SeedPlan.from_settings(recorded_settings(m["settings"]))
    m["seeds"] = plan.to_manifest()
    for name, record in m.get("stages", {}).items():
        if name in plan.seeds:
            record["seed"] = plan[name]
    m["settings_fingerprint"] = integrity.recorded_settings_fingerprint(m["settings"])
    evaluate = m.get("stages", {}).get("evaluate")
    if evaluate is not None and m.get("metrics"):
        evaluate.setdefault("info", {})["metrics"] = m["metrics"]
    return sealed(m)


def sealed(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest as the writer would seal it now (after a test's deliberate edit)."""
    m = dict(manifest)
    m["manifest_version"] = MANIFEST_VERSION
    m[integrity.SEAL] = integrity.seal(m)
    return m


def write_sealed(run_dir: Path, manifest: dict[str, Any]) -> None:
    """Write `manifest` (a test's stand-in for another run) sealed, into run_dir."""
    (Path(run_dir) / "manifest.json").write_text(json.dumps(sealed(manifest)))
