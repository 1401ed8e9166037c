"""Older manifests: their settings, with fields added since set to what those runs used.

A manifest records the settings a run was made with; a setting added later is absent
from it, and its default today may not be what that run actually did. Reading an old
manifest (verify, compare, sweeps) goes through `recorded_settings`.
"""

from __future__ import annotations

from settings.model import RunSettings

#: Settings added after runs were first recorded, with the value those earlier runs used:
#: a run from before the portable profile ran under no oneDNN cap, one from before
#: user code used the built-in model, data and augmentation.
_ADDED_SINCE = {
    ("determinism", "cpu_isa"): "native",
    ("determinism", "onednn_ops"): "default",
    ("data", "loader"): None,
    ("model", "builder"): None,
    ("model", "options"): {},
    ("augment", "pipeline"): None,
    ("data", "workers"): None,
    ("data", "cache"): True,
    ("training", "shards"): 1,
}


def upgrade_recorded(recorded: dict) -> dict:
    """A manifest's settings with later-added fields set to what that run actually used."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in recorded.items()}
    for (section, name), value in _ADDED_SINCE.items():
        if isinstance(out.get(section, {}), dict):
            out.setdefault(section, {}).setdefault(name, value)
    return out


def recorded_settings(recorded: object) -> RunSettings:
    """RunSettings from a manifest's `settings`, older manifests included."""
    if not isinstance(recorded, dict):
        return RunSettings.model_validate(recorded)  # raises a ValidationError that says so
    return RunSettings.model_validate(upgrade_recorded(recorded))
