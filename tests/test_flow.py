"""The train flow in-process, on the session's Prefect test server."""

from __future__ import annotations

import json
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


def test_the_leaderboard_of_an_output_folder_lists_every_run_in_it(
    prefect_server: None, settings: RunSettings, tmp_path: Path
) -> None:
    from prefect.artifacts import Artifact

    from seedtrail.run.leaderboard import leaderboard_key

    first = train_in_process(settings)
    second = train_in_process(settings.model_copy(update={"seed": 1}))
    elsewhere = train_in_process(
        settings.model_copy(update={"output_dir": tmp_path / "other"}), stop_after="split"
    )
    # The latest version under the folder's key is the whole board: both runs, newest first.
    board = Artifact.get(leaderboard_key(settings.output_dir))
    assert board is not None and board.type == "table"
    rows = board.data if isinstance(board.data, list) else json.loads(board.data)
    assert [r["run"] for r in rows] == [second["run_id"], first["run_id"]]
    for row, manifest in zip(rows, (second, first), strict=True):
        assert row["seed"] == manifest["settings"]["seed"]
        assert row["status"] == "complete"
        assert row["accuracy"] == round(manifest["metrics"]["test_accuracy"], 4)
        assert row["fingerprint"] == manifest["stages"]["train"]["fingerprint"][:12]
        assert row["run_dir"] == manifest["run_dir"]
        assert row["seconds"] > 0
    assert board.description.startswith("2 runs in ")
    # The curves name the root seed, as the card does, and the train stage's own seed.
    from PIL import Image

    train_seed = second["seeds"]["stages"]["train"]
    with Image.open(Path(second["run_dir"]) / "training_curves.png") as png:
        assert png.text["Title"] == f"root seed 1 (train seed {train_seed}) · 2 epochs"
    # Another folder has its own board (here one partial run).
    other = Artifact.get(leaderboard_key(tmp_path / "other"))
    assert other is not None and elsewhere["run_id"] in str(other.data)
    assert leaderboard_key(tmp_path / "other") != leaderboard_key(settings.output_dir)
