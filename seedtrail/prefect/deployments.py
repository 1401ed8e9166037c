"""The project's deployments, declared once.

`python -m flows.serve` registers exactly these; `prefect.yaml` (for `prefect
deploy` and workers) must say the same, and tests/test_deployments.py proves it
field by field. Flows are referenced by entrypoint, as Prefect workers load
them, so no flow module imports another (the sweep runs the train flow too).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from settings.model import RunSettings

if TYPE_CHECKING:
    from prefect import Flow

ROOT = Path(__file__).resolve().parents[2]
# Deployment names are "<flow name>/<NAME>", e.g. `train/seedtrail`.
NAME = "seedtrail"
TAGS = ("seedtrail",)
TRAIN_ENTRYPOINT = "flows/train.py:train_flow"
SWEEP_SEEDS = [0, 1, 2, 3]


def train_parameters(settings: RunSettings) -> dict[str, Any]:
    """Every setting, as JSON: a custom run replaces only the sections it sends.

    Unset optional fields (seed pins, data.path) are left out: the UI form's schema has no
    null for them (settings/model.py), so the server would refuse a null.
    """
    return settings.model_dump(mode="json", exclude_none=True)


def sweep_parameters(settings: RunSettings) -> dict[str, Any]:
    """4 root seeds of the given settings. No sweep_dir: the flow computes it from the run's
    own base and vary (the CLI's folder), so a custom run with another vary gets its own."""
    return {"base": train_parameters(settings), "seeds": SWEEP_SEEDS, "vary": ["all"]}


@dataclass(frozen=True)
class DeploymentSpec:
    flow_name: str
    entrypoint: str  # relative to the repository root
    description: str
    cron: str | None  # the default schedule (UTC); None: runs only when asked
    parameters: Callable[[RunSettings], dict[str, Any]]


DEPLOYMENTS: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        "train",
        TRAIN_ENTRYPOINT,
        "Train one model reproducibly. Custom run: change any setting, "
        "e.g. only the seed; the others keep this deployment's values. Results: the run-card "
        "artifact (curves, augmentation, metrics) and the flow run's last log line.",
        "0 3 * * *",  # nightly
        train_parameters,
    ),
    DeploymentSpec(
        "sweep",
        "flows/sweep.py:sweep_flow",
        "Seed sweep: the train flow once per seed, each run in "
        "its own process, one at a time; vary picks the source of randomness. Results: the "
        "sweep-summary artifact (statistics, CI95, distribution plot).",
        "0 4 * * 0",  # weekly
        sweep_parameters,
    ),
    DeploymentSpec(
        "verify",
        "flows/verify.py:verify_flow",
        "Verify a finished run (run_dir): rerun it from its manifest and compare "
        "every stage's fingerprint; a difference fails the run. Report: verify-report.",
        None,  # needs a finished run to check: no default schedule
        lambda settings: {},
    ),
)


def schedule_note(cron: str | None, interval_s: float | None, timezone: str) -> str:
    """The schedule in words, with its time zone: the UI shows times in the browser's zone."""
    if interval_s:
        return f"Schedule: every {interval_s:g} s."
    if cron:
        return f"Schedule: cron `{cron}` in time zone {timezone}."
    return "No schedule: runs only when started."


def zone_slug(timezone: str) -> str:
    """`Europe/Berlin` -> `europe-berlin`: Prefect's UI shows neither a cron's zone nor a slug's case."""
    return re.sub(r"[^a-z0-9]+", "-", timezone.lower()).strip("-")


def schedule_slug(flow_name: str, timezone: str) -> str:
    """The schedule's slug names its zone (`train-utc`): the UI's badge says only "03:00 AM"."""
    return f"{flow_name}-{zone_slug(timezone)}"


def deployment_tags(timezone: str | None) -> list[str]:
    """The deployment's tags; with a schedule, `tz:<zone>` too (shown on its every run)."""
    return [*TAGS, f"tz:{timezone}"] if timezone else list(TAGS)


def full_description(spec: DeploymentSpec, cron: str | None, interval_s: float | None = None,
                     timezone: str = "UTC") -> str:  # fmt: skip
    return f"{spec.description} {schedule_note(cron, interval_s, timezone)}"


def load_flow(entrypoint: str) -> Flow[Any, Any]:
    """A flow by its entrypoint (`flows/train.py:train_flow`), imported as its module.

    An import, not Prefect's script loader: the module is loaded once under its own
    name, with the same settings and globals as any other import in this process.
    """
    path, name = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)
