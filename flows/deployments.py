"""Deployment-facing flows: what `python -m flows.serve` and `prefect.yaml` register.

Prefect merges a custom run's parameters into the deployment's at the top level
only: with one `settings` parameter, a run that sends `{"settings": {"seed": 5}}`
would drop every other setting of the deployment. So the deployment flow takes
the fields of `RunSettings` as its top-level parameters (`seed`, `output_dir` and
one frozen model per section): `--param seed=5` replaces only the seed, and
`--param training='{"epochs": 3}'` replaces only the training section.

The parameter schema Prefect builds from this signature carries every bound,
choice and default of the settings models, and the server enforces it
(`enforce_parameter_schema=True`) before a run is created.
"""

# No `from __future__ import annotations`: the parameter annotations are built at
# import time from RunSettings, and Prefect reads them from the signature.

from collections.abc import Callable
from typing import Annotated, Any

from prefect import flow, tags
from prefect.runtime import flow_run
from prefect.task_runners import ProcessPoolTaskRunner
from pydantic import ValidationError

from flows import sweep as _sweep
from flows.train import run_training, settings_fingerprint
from seedtrail.prefect_run import seed_tag, tag_current_flow_run
from settings.model import RunSettings

# Deployment names are "<flow name>/<DEPLOYMENT_NAME>", e.g. `train/seedtrail`.
DEPLOYMENT_NAME = "seedtrail"
DEPLOYMENT_TAGS = ("seedtrail",)

_DEFAULTS = RunSettings()


def _setting(name: str) -> Any:
    """The annotation of `RunSettings.<name>` with its bounds, for a flow parameter."""
    info = RunSettings.model_fields[name]
    return Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation


def _settings_docstring(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Append an `Args:` section from the RunSettings descriptions.

    Prefect takes a parameter's description in the UI form from the docstring.
    """
    lines = [f"    {name}: {info.description}" for name, info in RunSettings.model_fields.items()]
    fn.__doc__ = f"{(fn.__doc__ or '').strip()}\n\nArgs:\n" + "\n".join(lines) + "\n"
    return fn


def settings_from_parameters(parameters: dict[str, Any]) -> RunSettings:
    """RunSettings from the deployment flow's parameters (models or their JSON)."""
    return RunSettings.model_validate(
        {k: v for k, v in parameters.items() if k in RunSettings.model_fields}
    )


def _train_run_name() -> str:
    params = dict(flow_run.parameters)
    try:
        s = settings_from_parameters(params)
    except ValidationError:  # the run fails on its parameters next; still say which seed
        return f"train-seed{params.get('seed', '?')}-invalid"
    return f"train-seed{s.seed}-{settings_fingerprint(s)[:8]}"


@flow(
    name="train",
    flow_run_name=_train_run_name,
    validate_parameters=True,
    description="Train one Keras model reproducibly: one parameter per settings section.",
)
@_settings_docstring
def train(
    seed: _setting("seed") = _DEFAULTS.seed,
    output_dir: _setting("output_dir") = _DEFAULTS.output_dir,
    data: _setting("data") = _DEFAULTS.data,
    augment: _setting("augment") = _DEFAULTS.augment,
    split: _setting("split") = _DEFAULTS.split,
    model: _setting("model") = _DEFAULTS.model,
    training: _setting("training") = _DEFAULTS.training,
    determinism: _setting("determinism") = _DEFAULTS.determinism,
    seeds: _setting("seeds") = _DEFAULTS.seeds,
) -> dict[str, Any]:
    """Train one Keras model reproducibly; the same pipeline and bytes as `python -m flows.train`."""
    settings = RunSettings(
        seed=seed,
        output_dir=output_dir,
        data=data,
        augment=augment,
        split=split,
        model=model,
        training=training,
        determinism=determinism,
        seeds=seeds,
    )
    tag_current_flow_run(seed_tag(settings.seed))
    with tags(seed_tag(settings.seed)):  # the task runs carry the seed too
        return run_training(settings)


def deployment_parameters(settings: RunSettings) -> dict[str, Any]:
    """Default parameters of a train deployment: every setting, as JSON."""
    return settings.model_dump(mode="json")


# The sweep for deployments: each seed trains in a worker process, never in the flow's own
# (TF thread pools are per process), one at a time (a worker machine trains one model at once).
sweep = _sweep.sweep_flow.with_options(task_runner=ProcessPoolTaskRunner(max_workers=1))
SWEEP_SEEDS = [0, 1, 2, 3]


def sweep_parameters(settings: RunSettings) -> dict[str, Any]:
    """Default parameters of a sweep deployment: 4 root seeds of the given settings."""
    vary = ["all"]
    return {
        "base": deployment_parameters(settings),
        "seeds": SWEEP_SEEDS,
        "vary": vary,
        "sweep_dir": str(_sweep.default_sweep_dir(settings, vary)),
    }
