"""A manifest must match its own content: an edited manifest is refused, never compared.

The writer (seedtrail/run/rundir.py) seals every manifest it saves: `manifest_sha256` is the
sha256 of the manifest's canonical JSON without that key. Any change to the file after
the run wrote it (a setting, a metric, a fingerprint, a NaN typed over a number) breaks
the seal. This guards against edits and accidents, not against someone who recomputes
the seal on purpose.

Manifests from before the seal (versions 1 and 2) are checked for what they can prove
about themselves: the settings against `settings_fingerprint`, the seeds against the root
seed and the derivation rule, the final weights against the last epoch's fingerprint,
the metrics against the evaluate stage's own record, and no non-finite metric (an
unsealed NaN cannot be told from an edited one).
"""

from __future__ import annotations

import json
import math
from typing import Any

from seedtrail.core.fingerprint import canonical_json, fingerprint_json
from seedtrail.core.pipeline_table import EPOCH_STAGE, PIPELINE
from settings.seeds import SeedPlan

SEAL = "manifest_sha256"
#: First manifest version the writer seals.
SEALED_SINCE = 3
#: Keys that are not part of the file (added by readers) or are the seal itself.
_UNSEALED = (SEAL, "run_dir")


def as_json(obj: Any) -> Any:
    """The value as it reads back from the file (Paths and tuples as JSON has them)."""
    return json.loads(json.dumps(obj, default=str))


def seal(manifest: dict[str, Any]) -> str:
    """The sha256 of the manifest's content, the seal key and reader-added keys left out."""
    return fingerprint_json({k: v for k, v in as_json(manifest).items() if k not in _UNSEALED})


def settings_identity(settings: dict[str, Any]) -> dict[str, Any]:
    """What identifies a run's computation, from its settings as JSON: everything but where
    its files go and how many inter-op threads run its independent ops (which changes no
    byte: docs/parallelism.md). The one rule for writing and for checking the fingerprint."""
    out = {k: v for k, v in settings.items() if k != "output_dir"}
    det = out.get("determinism")
    if isinstance(det, dict):
        out["determinism"] = {k: v for k, v in det.items() if k != "inter_op_threads"}
    return out


def recorded_settings_fingerprints(settings: dict[str, Any]) -> set[str]:
    """The settings_fingerprint values a seedtrail version could have written for these settings.

    Computed from the recorded JSON, not from RunSettings: a field added to RunSettings
    since the run was recorded must not make an old manifest look edited. Runs recorded
    before inter-op threads left the identity (issue 23) included them.
    """
    legacy = {k: v for k, v in settings.items() if k != "output_dir"}
    return {fingerprint_json(settings_identity(settings)), fingerprint_json(legacy)}


def _non_finite(obj: Any, prefix: str) -> list[str]:
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _non_finite(v, f"{prefix}.{k}")]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _non_finite(v, f"{prefix}[{i}]")]
    if isinstance(obj, float) and not math.isfinite(obj):
        return [prefix]
    return []


def problems(data: dict[str, Any]) -> list[str]:
    """Why this manifest's content does not match itself (empty: it does), first cause first."""

    out: list[str] = []
    version = data.get("manifest_version", 1)
    sealed = isinstance(version, int) and version >= SEALED_SINCE
    settings = data.get("settings")
    s_fp = data.get("settings_fingerprint")
    if s_fp is None:  # every seedtrail version has recorded it
        out.append("settings_fingerprint is missing")
    elif isinstance(settings, dict) and s_fp not in recorded_settings_fingerprints(settings):
        out.append("settings do not match settings_fingerprint")
    out += _seed_problems(data)
    stages = data.get("stages") if isinstance(data.get("stages"), dict) else {}
    train = stages.get(EPOCH_STAGE) if isinstance(stages.get(EPOCH_STAGE), dict) else {}
    efs = (train.get("info") or {}).get("epoch_fingerprints") if train else None
    if (
        isinstance(efs, list)
        and efs
        and not train.get("skipped")
        and train.get("fingerprint") != efs[-1]
    ):
        out.append(f"stages.{EPOCH_STAGE}.fingerprint is not its last epoch's fingerprint")
    # the stage whose info gives the manifest its `metrics` section (evaluate)
    by = next(s.name for s in PIPELINE if "metrics" in s.manifest)
    evaluate = stages.get(by) if isinstance(stages.get(by), dict) else {}
    recorded_metrics = (evaluate.get("info") or {}).get("metrics") if evaluate else None
    metrics = data.get("metrics")
    if (
        recorded_metrics is not None
        and metrics
        and canonical_json(metrics) != canonical_json(recorded_metrics)
    ):
        out.append(f"metrics differ from the {by} stage's record of them")
    if not sealed and data.get("status") == "complete":
        bad = _non_finite(metrics, "metrics") + _non_finite(recorded_metrics, by)
        if bad:
            out.append(
                f"{bad[0]} is not a finite number, and this unsealed (version {version}) "
                "manifest cannot show that the run recorded it"
            )
    if sealed:  # last: the checks above name what was edited, this one catches the rest
        recorded = data.get(SEAL)
        if recorded is None:
            out.append(f"{SEAL} is missing (version {version} manifests are sealed)")
        elif recorded != seal(data):
            out.append(f"its content no longer matches its {SEAL}")
    return out


def _seed_problems(data: dict[str, Any]) -> list[str]:
    seeds, settings = data.get("seeds"), data.get("settings")
    if not isinstance(seeds, dict) or not isinstance(settings, dict):
        return []
    root = settings.get("seed")
    if "root" in seeds and root is not None and seeds["root"] != root:
        return [f"seeds.root {seeds['root']} is not settings.seed {root}"]
    pins = settings.get("seeds") if isinstance(settings.get("seeds"), dict) else {}
    # The stages of the pipeline the run had (its header's code versions), not today's
    # table: a stage added since is not missing from an older run.
    versions = data.get("stage_versions")
    had = tuple(versions) if isinstance(versions, dict) and versions else None
    try:
        plan = SeedPlan.derive(int(seeds.get("root", root)), pins, stages=had)
    except (TypeError, ValueError):
        return []  # unreadable seeds: the typed manifest names that
    recorded = seeds.get("stages") if isinstance(seeds.get("stages"), dict) else {}
    # Every stage the plan derives is recorded: a removed entry is an edit too.
    missing = sorted(set(plan.seeds) - set(recorded))
    if "stages" in seeds and missing:
        return [f"seeds.stages lacks the seed of {', '.join(missing)}"]
    for stage, seed in recorded.items():
        if stage in plan.seeds and plan.seeds[stage] != seed:
            return [f"seeds.stages.{stage} is not the seed its rule derives from the root"]
    keys = plan.to_manifest()["stage_keys"]
    recorded_keys = seeds.get("stage_keys") if isinstance(seeds.get("stage_keys"), dict) else {}
    missing_keys = sorted(set(keys) - set(recorded_keys))
    if "stage_keys" in seeds and missing_keys:
        return [f"seeds.stage_keys lacks the key of {', '.join(missing_keys)}"]
    for stage, key in recorded_keys.items():
        if stage in keys and keys[stage] != key:
            return [f"seeds.stage_keys.{stage} is not the key of that stage's name"]
    if "pinned" in seeds and sorted(map(str, seeds["pinned"] or [])) != sorted(plan.pinned):
        return ["seeds.pinned is not the stages settings.seeds pins"]
    stages = data.get("stages") if isinstance(data.get("stages"), dict) else {}
    for stage, record in stages.items():
        if isinstance(record, dict) and stage in recorded and record.get("seed") != recorded[stage]:
            return [f"stages.{stage}.seed is not seeds.stages.{stage}"]
    return []
