"""Flow parameters <-> RunSettings: one parameter per settings section.

Deployment parameters merge at the top level only: a custom run sending
{"settings": {"seed": 5}} would replace the whole default settings object. So the train
flow takes RunSettings' fields as its top-level parameters: a run sending only `seed`
keeps every other section of the deployment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from settings.form import PARAMETER_TITLES
from settings.model import RunSettings


def form_title(title: str) -> Any:
    """The form's label for a flow parameter, as `Annotated[T, form_title("Run folder")]`.

    Prefect labels a parameter with its name ("run_dir (Optional)").
    """
    return Field(json_schema_extra={"title": title})


def setting_annotation(name: str) -> Any:
    """The annotation of `RunSettings.<name>` with its bounds and form title, for a flow parameter.

    Prefect titles every parameter with its name ("data"): the form showed raw keys. A
    `json_schema_extra` title in the annotation replaces it ("Data").
    """
    info = RunSettings.model_fields[name]
    title = PARAMETER_TITLES.get(name)
    titled = form_title(title) if title else None
    metadata = [*info.metadata, *([titled] if titled else [])]
    return Annotated[info.annotation, *metadata] if metadata else info.annotation


def with_settings_docstring(fn: Callable[..., Any] | None = None, /, **options: str) -> Any:
    """Append an `Args:` section: Prefect takes the UI form's descriptions from the docstring.

    Every setting's description, then `options` (run option -> description).
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        described = {n: str(i.description) for n, i in RunSettings.model_fields.items()}
        lines = [f"    {name}: {text}" for name, text in {**described, **options}.items()]
        fn.__doc__ = f"{(fn.__doc__ or '').strip()}\n\nArgs:\n" + "\n".join(lines) + "\n"
        return fn

    return decorate if fn is None else decorate(fn)


def settings_parameters(settings: RunSettings) -> dict[str, Any]:
    """The train flow's parameters for these settings (one per RunSettings field)."""
    return {name: getattr(settings, name) for name in RunSettings.model_fields}


def settings_from_parameters(parameters: dict[str, Any]) -> RunSettings:
    """RunSettings from the train flow's parameters (models or their JSON)."""
    return RunSettings.model_validate(
        {k: v for k, v in parameters.items() if k in RunSettings.model_fields}
    )
