"""The project's deployments, declared once.

`python -m flows.serve` registers exactly these; `prefect.yaml` (for `prefect
deploy` and workers) must say the same, and tests/test_deployments.py proves it
field by field. Flows are referenced by entrypoint, as Prefect workers load
them, so no flow module imports another (the sweep runs the train flow too).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seedtrail.sweep import default_sweep_dir
from settings.model import RunSettings

if TYPE_CHECKING:
    from prefect import Flow

ROOT = Path(__file__).resolve().parent.parent
# Deployment names are "<flow name>/<NAME>", e.g. `train/seedtrail`.
NAME = "seedtrail"
TAGS = ("seedtrail",)
TRAIN_ENTRYPOINT = "flows/train.py:train_flow"
SWEEP_SEEDS = [0, 1, 2, 3]


def train_parameters(settings: RunSettings) -> dict[str, Any]:
    """Every setting, as JSON: a custom run replaces only the sections it sends."""
    return settings.model_dump(mode="json")


def sweep_parameters(settings: RunSettings) -> dict[str, Any]:
    """4 root seeds of the given settings, in the sweep directory the CLI would use."""
    vary = ["all"]
    return {
        "base": train_parameters(settings),
        "seeds": SWEEP_SEEDS,
        "vary": vary,
        "sweep_dir": str(default_sweep_dir(settings, vary)),
    }


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
        "One reproducible training run. Custom run: change any setting, e.g. only the seed; "
        "the others keep this deployment's values.",
        "0 3 * * *",  # nightly
        train_parameters,
    ),
    DeploymentSpec(
        "sweep",
        "flows/sweep.py:sweep_flow",
        "The training flow once per seed (seeds), one process per run, plus statistics.",
        "0 4 * * 0",  # weekly
        sweep_parameters,
    ),
    DeploymentSpec(
        "verify",
        "flows/verify.py:verify_flow",
        "Rerun a finished run from its manifest (run_dir) and compare every stage.",
        None,  # needs a finished run to check: no default schedule
        lambda settings: {},
    ),
)


def load_flow(entrypoint: str) -> Flow[Any, Any]:
    """A flow by its entrypoint (`flows/train.py:train_flow`), imported as its module.

    An import, not Prefect's script loader: the module is loaded once under its own
    name, with the same settings and globals as any other import in this process.
    """
    path, name = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)
