"""The typed manifest: old files stay readable, bad ones are one line (exit 2), never a traceback."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from seedtrail.core.errors import InputError
from seedtrail.run.manifest import MANIFEST_VERSION, Manifest, NotARun, read_manifest

FIXTURES = Path(__file__).parent / "fixtures"


def _v1() -> dict[str, Any]:
    """A manifest exactly as b1f91f1 wrote it (the in-process test configuration)."""
    return json.loads((FIXTURES / "manifest_v1.json").read_text())


def _write(tmp_path: Path, manifest: Any) -> Path:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_a_version_1_manifest_reads_with_defaults_for_what_it_lacks(tmp_path: Path) -> None:
    m = read_manifest(_write(tmp_path, _v1()))
    assert m.manifest_version == 1 and m.complete and m.run_dir == str(tmp_path / "run")
    assert list(m.stages) == [
        "environment",
        "data",
        "augment",
        "split",
        "model",
        "train",
        "evaluate",
    ]
    assert all(st.deterministic and st.cache == {} for st in m.stages.values())
    assert m.settings.training.epochs == 2
    assert m.metrics.test_accuracy is not None and m.metrics.per_class
    assert len(m.epoch_fingerprints()) == 2
    assert m.environment_facts()["packages"]["tensorflow"]


def test_the_writer_writes_the_current_version() -> None:
    assert MANIFEST_VERSION == 3
    assert Manifest.model_fields["manifest_version"].annotation is not int  # a closed set


def _set(m: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    m = copy.deepcopy(m)
    *path, last = dotted.split(".")
    node = m
    for key in path:
        node = node[key]
    node[last] = value
    return m


@pytest.mark.parametrize(
    ("dotted", "value", "expected"),
    [
        ("metrics.test_accuracy", "high", "metrics.test_accuracy"),
        ("metrics", [1, 2], "metrics"),
        ("seeds.stages.data", "seven", "seeds.stages.data"),
        ("stages.data.info", ["not", "an", "object"], "stages.data.info"),
        ("stages.train.fingerprint", None, "stages.train.fingerprint"),
        ("status", 3, "status"),
        ("manifest_version", 99, "manifest_version"),
        ("settings.training.epochs", 0, "manifest settings: training.epochs"),
        ("settings.nonsense", 1, "manifest settings: nonsense"),
    ],
)
def test_a_mistyped_manifest_is_one_input_error_line(
    tmp_path: Path, dotted: str, value: Any, expected: str
) -> None:
    run = _write(tmp_path, _set(_v1(), dotted, value))
    with pytest.raises(NotARun) as err:
        read_manifest(run)
    assert isinstance(err.value, InputError)  # run_cli: "error: ...", exit 2
    (line,) = err.value.problems
    assert expected in line and str(run) in line and "\n" not in line
