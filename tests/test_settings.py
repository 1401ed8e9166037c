"""Settings: bounds, frozen/extra-forbid models, CLI precedence and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from seedtrail.core.errors import InputError
from settings import RunSettings, TrainingSettings
from settings.cli import load_settings
from settings.form import bounds_text

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_are_valid_and_frozen() -> None:
    s = RunSettings()
    with pytest.raises(ValidationError):
        s.seed = 3  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        RunSettings.model_validate({"sed": 1})


def test_every_field_has_a_description_and_schema_bounds() -> None:
    schema = RunSettings.model_json_schema()
    for name, model in schema["$defs"].items():
        for field, spec in model["properties"].items():
            assert spec.get("description"), f"{name}.{field} has no description"
    epochs = schema["$defs"]["TrainingSettings"]["properties"]["epochs"]
    assert epochs["minimum"] == 1 and epochs["maximum"] >= 100
    assert schema["properties"]["seed"]["description"]


def test_flags_override_env_override_toml_override_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text("seed = 5\n[training]\nepochs = 7\nbatch_size = 16\n[data]\nkind = 'digits'\n")
    monkeypatch.setenv("SEEDTRAIL_TRAINING__EPOCHS", "8")
    monkeypatch.setenv("SEEDTRAIL_SEED", "6")
    s = load_settings(["--config", str(toml), "--seed", "9"])
    assert s.seed == 9  # flag beats env and TOML
    assert s.training.epochs == 8  # env beats TOML
    assert s.training.batch_size == 16  # TOML beats default
    assert s.data.kind == "digits"
    assert s.training.learning_rate == TrainingSettings().learning_rate  # default


def test_kebab_case_flags_and_stage_seed_override() -> None:
    s = load_settings(
        ["--split.test-size", "0.25", "--seeds.model", "42", "--model.conv-filters", "8,16"]
    )
    assert s.split.test_size == 0.25
    assert s.seeds.model == 42
    assert s.model.conv_filters == (8, 16)
    assert isinstance(s, RunSettings)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--training.epochs", "-1"], "training.epochs"),
        (["--split.test-size", "1.5"], "split.test_size"),
        (["--bogus", "3"], "--bogus"),
        (["--data.kind", "images"], "data.kind"),
        (["--seed", "-4"], "seed"),
        (["--data.kind", "file"], "data.path"),
        (["--split.test-size", "0.5", "--split.val-size", "0.45"], "split"),
        (["--config", "/nonexistent.toml"], "--config"),
    ],
)
def test_bad_input_is_one_line_naming_the_field(argv: list[str], expected: str) -> None:
    with pytest.raises(InputError) as info:
        load_settings(argv)
    assert len(info.value.problems) == 1
    assert expected in info.value.problems[0]
    assert "\n" not in info.value.problems[0]


def test_two_problems_give_two_lines() -> None:
    with pytest.raises(InputError) as info:
        load_settings(["--training.epochs", "0", "--training.batch-size", "0"])
    assert len(info.value.problems) == 2


def test_help_lists_every_field_with_its_description() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "flows.train", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    schema = RunSettings.model_json_schema()
    for section, ref in schema["properties"].items():
        if "$ref" not in ref and "allOf" not in ref:
            assert f"--{section.replace('_', '-')}" in text
            continue
        model = schema["$defs"][(ref.get("$ref") or ref["allOf"][0]["$ref"]).rsplit("/", 1)[1]]
        for field, spec in model["properties"].items():
            assert f"--{section}.{field.replace('_', '-')}" in text, field
            # the form's schema adds the bounds to a description; --help shows them as types
            described = spec["description"].removesuffix(f" ({bounds_text(spec)})")
            assert " ".join(described.split())[:30] in text, field
    assert "--config" in text
