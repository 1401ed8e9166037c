"""What a run takes from the user's project: identified statically, keyed per stage, compared."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from seedtrail.core.errors import InputError
from seedtrail.inputs.user_inputs import (
    augment_inputs,
    changes,
    data_inputs,
    identify,
    key_inputs,
    model_inputs,
)
from settings.model import RunSettings

ROOT = Path(__file__).resolve().parent.parent


def settings(**sections) -> RunSettings:
    return RunSettings.model_validate(sections)


def test_default_run_brings_nothing_and_keys_nothing():
    assert identify(RunSettings()) == {}
    assert key_inputs({}) == {}


def test_builder_images_and_pipeline_are_identified_and_keyed(tmp_path: Path):
    from examples.make_images import write_dataset

    write_dataset(tmp_path / "imgs", per_class=3, size=12)
    s = settings(
        data={"kind": "images", "path": str(tmp_path / "imgs")},
        model={"builder": "examples.model:build", "options": {"filters": [4]}},
        augment={"pipeline": str(ROOT / "examples" / "augment.yaml")},
    )
    record = identify(s)
    assert record["data.path"]["files"] == 9
    modules = list(record["model.builder"]["modules"])
    assert modules == ["examples", "examples.blocks", "examples.model"]
    assert list(key_inputs(data_inputs(s.data))) == ["data.path"]
    assert list(key_inputs(model_inputs(s.model))) == ["model.builder"]
    pipeline = record["augment.pipeline"]["sha256"]
    assert key_inputs(augment_inputs(s.augment)) == {"augment.pipeline": pipeline}


def test_changes_name_the_module_or_file():
    a = {
        "model.builder": {"sha256": "1", "modules": {"x.model": "a", "x.blocks": "b"}},
        "augment.pipeline": {"path": "aug.yaml", "sha256": "p"},
        "data.path": {"path": "imgs", "sha256": "d"},
    }
    b = {
        "model.builder": {"sha256": "2", "modules": {"x.model": "a", "x.blocks": "c"}},
        "augment.pipeline": {"path": "aug.yaml", "sha256": "q"},
        "data.path": {"path": "imgs", "sha256": "d"},
    }
    assert changes(a, b) == [
        "model code changed (module x.blocks)",
        "augmentation pipeline file changed (aug.yaml)",
    ]
    assert changes(a, a) == []


@pytest.mark.parametrize(
    ("sections", "pattern"),
    [
        ({"model": {"builder": "examples.nosuch:build"}}, r"^model\.builder: no module named"),
        (
            {"model": {"builder": "examples.model:nosuch"}},
            r"^model\.builder: module examples\.model has no function",
        ),
        (
            {"data": {"kind": "python", "loader": "examples.loader:nope"}},
            r"^data\.loader: module examples\.loader has no",
        ),
        ({"augment": {"pipeline": "nope.yaml"}}, r"^augment\.pipeline nope\.yaml: cannot read"),
    ],
)
def test_bad_references_fail_before_anything_runs(sections, pattern):
    with pytest.raises(InputError, match=pattern):
        identify(settings(**sections))


def test_an_empty_class_folder_fails_before_anything_runs(tmp_path: Path):
    from examples.make_images import write_dataset

    write_dataset(tmp_path / "imgs", per_class=3, size=12)
    shutil.rmtree(tmp_path / "imgs" / "square")
    (tmp_path / "imgs" / "square").mkdir()
    with pytest.raises(InputError, match=r"^data\.path .*: class folder square/ has no images"):
        identify(settings(data={"kind": "images", "path": str(tmp_path / "imgs")}))


def test_compare_names_the_changed_module_as_the_likely_cause():
    from seedtrail.compare.explanation import compare_manifests

    def manifest(fp: str, blocks: str) -> dict:
        modules = {"x.model": "a", "x.blocks": blocks}
        return {
            "run_id": fp,
            "status": "complete",
            "settings": {},
            "seeds": {"root": 0},
            "stages": {"model": {"seed": 1, "fingerprint": fp}},
            "user_inputs": {"model.builder": {"sha256": blocks, "modules": modules}},
        }

    c = compare_manifests(manifest("f1", "b"), manifest("f2", "c"))
    assert c.causes[0] == "model code changed (module x.blocks)"
    assert "your code and files that differ" in c.render()
