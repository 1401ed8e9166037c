"""The train flow in-process, on the session's Prefect test server."""

from __future__ import annotations

from pathlib import Path

import pytest

from seedtrail.core.errors import InputError
from settings import DataSettings, RunSettings
from tests.conftest import train_in_process

# Every test here starts Prefect or a Python process, or trains for real.
pytestmark = pytest.mark.slow


def test_stop_after_split_writes_a_partial_run(prefect_server: None, settings: RunSettings) -> None:
    manifest = train_in_process(settings, stop_after="split")
    assert manifest["status"] == "partial"
    assert list(manifest["stages"]) == ["environment", "data", "augment", "split"]
    sizes = manifest["stages"]["split"]["info"]["sizes"]
    assert sizes == {"train": 60, "val": 30, "test": 30}
    assert Path(manifest["run_dir"], "augment_preview.png").exists()


def test_bad_input_inside_the_flow_leaves_no_run_directory(
    prefect_server: None, settings: RunSettings, tmp_path: Path
) -> None:
    bad = settings.model_copy(
        update={"data": DataSettings(kind="file", path=tmp_path / "gone.npz")}
    )
    with pytest.raises(InputError, match="file not found"):
        train_in_process(bad)
    # checked before anything is written (the flow's preflight): not even the output folder
    out = settings.output_dir
    assert not out.exists() or not any(p.name != ".store" for p in out.iterdir())


def test_tabular_data_skips_augmentation(prefect_server: None, settings: RunSettings) -> None:
    s = settings.model_copy(update={"data": DataSettings(kind="tabular", n_samples=120)})
    manifest = train_in_process(s, stop_after="model")
    assert manifest["stages"]["augment"]["skipped"] is True
    assert manifest["stages"]["augment"]["info"]["reason"] == "tabular data"
    assert manifest["stages"]["model"]["fingerprint"] != "skipped"
