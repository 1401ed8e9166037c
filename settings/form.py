"""The settings' JSON schema as Prefect's UI form shows it (`Section.model_config`).

Kept apart from the models (settings/model.py): what a setting means is there, how the
form presents it is here.
"""

from __future__ import annotations

from typing import Any

_BOUNDS = (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"),
           ("minItems", "items ≥"), ("maxItems", "items ≤"), ("minLength", "length ≥"))  # fmt: skip


#: The train form's labels for RunSettings' fields (flow parameters): Prefect labels a
#: parameter with its name ("data (Optional)").
PARAMETER_TITLES = {
    "seed": "Seed", "output_dir": "Output folder", "data": "Data", "augment": "Augmentation",
    "split": "Split", "model": "Model", "training": "Training", "determinism": "Determinism",
    "seeds": "Seed pins",
}  # fmt: skip


def bounds_text(prop: dict[str, Any]) -> str:
    """`≥ 1, ≤ 1000` from a JSON-schema property ("" without bounds)."""
    return ", ".join(f"{sign} {prop[key]}" for key, sign in _BOUNDS if key in prop)


def form_schema(schema: dict[str, Any], cls: type) -> None:
    """The JSON schema as Prefect's UI form shows it.

    A section is titled for people ("Training", not "TrainingSettings"), and an optional
    field (a seed pin, data.path) is a plain input left empty rather than a type switch
    whose null branch prints `Property is type "None"`. Deployment parameters leave
    unset fields out (seedtrail/prefect/deployments.py), so the server never sees a null there.
    The form does not show a field's bounds, so its description says them.
    """
    # "Data section", not "Data": the flow parameter `data` is titled "Data" in the form,
    # and pydantic drops a parameter's title that equals the title of the schema it refers to
    # (the form then shows the raw key).
    title = getattr(cls, "form_title", None)
    schema["title"] = f"{title} section" if title else schema.get("title")
    for prop in schema.get("properties", {}).values():
        branches = prop.get("anyOf", [])
        if len(branches) == 2 and {"type": "null"} in branches and prop.get("default", 0) is None:
            (kept,) = [b for b in branches if b != {"type": "null"}]
            del prop["anyOf"], prop["default"]
            prop.update(kept)
        if (bounds := bounds_text(prop)) and "description" in prop:
            prop["description"] = f"{prop['description']} ({bounds})"
