"""seedtrail/prefect/parameters.py and names.py: flow parameters <-> settings, run names, tags."""

from __future__ import annotations

import inspect

from seedtrail.prefect.deployments import load_flow
from seedtrail.prefect.names import is_generated_name, seed_tag, tag_current_flow_run
from seedtrail.prefect.parameters import settings_from_parameters, settings_parameters
from settings.model import RunSettings, TrainingSettings


def test_train_flow_takes_every_setting_as_a_top_level_parameter() -> None:
    """Deployment parameters merge at the top level only: one parameter per section."""
    train = load_flow("flows/train.py:train_flow")
    params = list(inspect.signature(train.fn).parameters)
    assert params[: len(RunSettings.model_fields)] == list(RunSettings.model_fields)
    s = RunSettings(seed=5, training=TrainingSettings(epochs=3))
    assert settings_from_parameters(settings_parameters(s)) == s
    assert "training: Training." in (train.fn.__doc__ or "")  # the UI form's descriptions


def test_tagging_the_flow_run_is_a_no_op_outside_one() -> None:
    tag_current_flow_run(seed_tag(7))  # must not raise
    assert seed_tag(7) == "seed:7"


def test_generated_names_are_replaced_and_typed_ones_kept() -> None:
    from coolname import generate_slug

    assert all(is_generated_name(generate_slug(2)) for _ in range(50))  # the server's names
    assert is_generated_name("gamma2-tethys")  # the UI form's
    assert is_generated_name("iota--r")  # the form's too (seen in a suite run)
    assert is_generated_name(None)
    assert not is_generated_name("my-baseline-run-2")
