"""Golden fingerprints: the stages that must give the same bytes on every machine.

Recorded once (tests/golden/travelling_stages.json, with where), asserted here on
whatever CPU runs the suite, so a machine on which they drift fails CI instead of
silently producing other data, splits or initial weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seedtrail.runtime import hardware
from settings.cli import load_settings
from tests.conftest import TINY, TinyRuns
from tests.golden_stages import TRAVELLING, travelling_fingerprints

GOLDEN = json.loads((Path(__file__).parent / "golden" / "travelling_stages.json").read_text())


@pytest.mark.parametrize(
    ("name", "flags"),
    [
        # the default run's data, augment and split, computed for real
        pytest.param("default", (), marks=pytest.mark.slow),
        ("tiny", TINY),
    ],
)
@pytest.mark.usefixtures("tensorflow_as_runs_configure_it")  # it builds the model here
def test_travelling_stages_match_the_golden_fingerprints(name: str, flags: tuple) -> None:
    got = travelling_fingerprints(load_settings(list(flags)))
    assert got == GOLDEN[name], (
        f"{name}: bytes drifted on this machine ({GOLDEN['recorded'][name]})"
    )


@pytest.mark.slow
def test_the_pipeline_computes_the_golden_stages_as_the_golden_helper_does(
    tiny_runs: TinyRuns,
) -> None:
    """The helper above must not drift from what `flows.train` records."""
    base = tiny_runs.get(base=())["base"].fingerprints()
    assert {s: base[s] for s in TRAVELLING} == GOLDEN["tiny"]


def portable_fingerprints(manifest: dict) -> dict:
    """What the portable profile promises on every x86-64 machine: trained bytes too."""
    stages = manifest["stages"]
    return {
        "train": stages["train"]["fingerprint"],
        "evaluate": stages["evaluate"]["fingerprint"],
        "epoch_fingerprints": stages["train"]["info"]["epoch_fingerprints"],
    }


@pytest.mark.slow
@pytest.mark.skipif(not hardware.is_x86(), reason="the portable profile's bytes are x86-64's")
def test_training_under_the_portable_profile_gives_the_golden_bytes(tiny_runs: TinyRuns) -> None:
    """Recorded once, asserted on every x86 CPU: a machine where they drift fails here."""
    base = tiny_runs.get(base=())["base"].manifest
    env = base["stages"]["environment"]["info"]["environment"]["determinism"]
    assert (env["onednn_ops"], env["onednn_max_cpu_isa"]) == ("off", "AVX2")  # the default
    assert portable_fingerprints(base) == GOLDEN["portable"]["tiny"], GOLDEN["recorded"]["tiny"]
