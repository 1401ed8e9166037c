"""flows.serve and prefect.yaml come from one declaration (seedtrail/prefect/deployments.py): same names,
entrypoints, descriptions, tags, schedules and default parameters. Also: no flow imports another.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import yaml

from seedtrail.prefect.deployments import (
    DEPLOYMENTS,
    NAME,
    ROOT,
    deployment_tags,
    full_description,
    load_flow,
    schedule_slug,
)
from seedtrail.prefect.parameters import settings_from_parameters
from settings.model import RunSettings


def _yaml_deployments() -> dict[str, dict]:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return {d["entrypoint"]: d for d in config["deployments"]}


def _as_settings(value: dict) -> RunSettings:
    return RunSettings.model_validate(value)


def test_prefect_yaml_says_what_the_declaration_says() -> None:
    in_yaml = _yaml_deployments()
    assert set(in_yaml) == {d.entrypoint for d in DEPLOYMENTS}
    for spec in DEPLOYMENTS:
        d = in_yaml[spec.entrypoint]
        assert d["name"] == NAME, spec.flow_name
        assert d["tags"] == deployment_tags("UTC" if spec.cron else None), spec.flow_name
        assert d["description"] == full_description(spec, spec.cron), spec.flow_name
        assert [s["cron"] for s in d.get("schedules", [])] == ([spec.cron] if spec.cron else [])
        assert all(s["timezone"] == "UTC" for s in d.get("schedules", []))
        # the zone where the UI shows it: the slug (and the tag above)
        for sched in d.get("schedules", []):
            assert sched["slug"] == schedule_slug(spec.flow_name, "UTC") == f"{spec.flow_name}-utc"
        declared, written = spec.parameters(RunSettings()), d["parameters"]
        if spec.flow_name == "train":  # `{}` in the file: the flow's defaults, every setting
            assert settings_from_parameters(written) == settings_from_parameters(declared)
            continue
        assert set(written) == set(declared), spec.flow_name
        for key, value in declared.items():
            if key == "base":
                assert _as_settings(written[key]) == _as_settings(value)
            else:
                assert written[key] == value, f"{spec.flow_name}.{key}"


def test_entrypoints_name_the_declared_flows() -> None:
    for spec in DEPLOYMENTS:
        assert load_flow(spec.entrypoint).name == spec.flow_name


def test_there_is_one_train_flow_and_its_defaults_are_the_settings_defaults() -> None:
    train = load_flow("flows/train.py:train_flow")
    params = inspect.signature(train.fn).parameters
    assert settings_from_parameters({k: p.default for k, p in params.items()}) == RunSettings()
    flows_named_train = [
        path for path in (ROOT / "flows").glob("*.py") if 'name="train"' in path.read_text()
    ]
    assert flows_named_train == [ROOT / "flows" / "train.py"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_no_flow_module_imports_another_and_library_code_never_imports_flows() -> None:
    for path in (ROOT / "flows").glob("*.py"):
        flows_imported = {m for m in _imports(path) if m == "flows" or m.startswith("flows.")}
        assert not flows_imported, f"{path.name} imports {flows_imported}"
    for folder in ("seedtrail", "tasks", "settings"):
        for path in (ROOT / folder).glob("*.py"):
            assert not any(m.startswith("flows") for m in _imports(path)), path
