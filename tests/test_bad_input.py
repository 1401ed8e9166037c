"""Bad input from flags, files and manifests: one line naming the problem, exit 2, nothing left.

Most cases call the commands' `main` in-process (each raises InputError before Prefect
or TensorFlow start; `run_cli` turns that into one line and exit 2, see the subprocess
checks at the end); the rest run as a user would.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seedtrail.core.errors import InputError
from settings import RunSettings
from settings.seeds import STAGES
from tests.conftest import TINY, run_module
from tests.manifests import consistent, sealed

FP = "ab" * 32


def _one_line(call: Callable[[], Any]) -> str:
    with pytest.raises(InputError) as err:
        call()
    assert len(err.value.problems) == 1, err.value.problems
    (line,) = err.value.problems
    assert "\n" not in line and "Traceback" not in line
    return line


def _train(args: list[str], out: Path) -> str:
    from flows.train import main

    line = _one_line(lambda: main([*args, "--output-dir", str(out)]))
    assert not out.exists() or not any(out.iterdir()), "something was left behind"
    return line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model.conv-filters", "0"], "model.conv_filters: Input should be greater than"),
        (["--model.conv-filters", "-8"], "model.conv_filters"),
        (["--model.conv-filters", "16,1000000000"], "less than or equal to 1024"),
        (["--training.epoch", "3"], "unknown flag: --training.epoch (did you mean --training.epochs?)"),
        (["--no-cach"], "unknown flag: --no-cach (did you mean --no-cache?)"),
        (["--resume"], "--resume: expected one argument"),
    ],
)  # fmt: skip
def test_bad_flags(tmp_path: Path, args: list[str], expected: str) -> None:
    assert expected in _train(args, tmp_path / "runs")


def test_empty_output_dir_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.train import main

    monkeypatch.chdir(tmp_path)
    assert "output_dir: must not be empty" in _one_line(lambda: main(["--output-dir", ""]))
    assert not any(tmp_path.iterdir())


def test_a_directory_is_named_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    out = tmp_path / "runs"
    assert f"--config: {folder} is a directory" in _train(["--config", str(folder)], out)
    data = ["--data.kind", "file", "--data.path", str(folder)]
    assert f"data.path: {folder} is a directory" in _train(data, out)


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text("[training]\nepochs = = 3\n")
    line = _train(["--config", str(config)], tmp_path / "runs")
    assert f"--config {config}: not a valid TOML file" in line


def _write_csv(path: Path, labels: list[str]) -> Path:
    rows = ["a,b,label", *(f"{i},{i % 3},{label}" for i, label in enumerate(labels))]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_csv_labels_1_and_1_0_are_one_class_and_fractions_are_refused(tmp_path: Path) -> None:
    from tasks.data import read_csv

    ds = read_csv(_write_csv(tmp_path / "d.csv", ["1", "1.0", "0", "0.0", "2"]), "label")
    assert ds.class_names == ("0", "1", "2")
    assert ds.y.tolist() == [1, 1, 0, 0, 2]
    bad = _write_csv(tmp_path / "f.csv", ["0", "0.5", "1"])
    assert "not fractions" in _one_line(lambda: read_csv(bad, "label"))


def test_nan_positions_are_plain_ints(tmp_path: Path) -> None:
    from tasks.data import read_npz

    x = np.ones((6, 3), dtype=np.float32)
    x[4, 2] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, x=x, y=np.arange(6) % 2)
    assert "(first at index (4, 2))" in _one_line(lambda: read_npz(path))


# ---- --resume: the manifest is input too ---------------------------------------------------


def _unfinished_run(tmp_path: Path, **changes: Any) -> Path:
    run = tmp_path / "runs" / "20260101-000000-seed0-abcdef-0000"
    run.mkdir(parents=True)
    manifest = {
        "manifest_version": 1,
        "run_id": run.name,
        "status": "interrupted",
        "settings": RunSettings(output_dir=tmp_path / "runs").model_dump(mode="json"),
        "seeds": {"root": 0, "stages": {}},
        "stages": {},
    }
    manifest = sealed({**consistent(manifest), **changes})  # each case: a bad type, or complete
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def _settings_with(**training: Any) -> dict[str, Any]:
    s = RunSettings().model_dump(mode="json")
    s["training"].update(training)
    return s


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"status": 5}, "status: Input should be 'running'"),
        ({"status": "complete"}, "already complete"),
        ({"settings": [1, 2]}, "settings: Input should be a valid dictionary"),
        ({"settings": _settings_with(epochs="x")}, "manifest settings: training.epochs"),
        ({"run_id": 3}, "run_id: Input should be a valid string"),
    ],
    ids=["status-5", "complete", "settings-list", "epochs-x", "run-id-int"],
)
def test_resume_validates_the_manifest(tmp_path: Path, changes: dict, expected: str) -> None:
    from flows.train import main

    run = _unfinished_run(tmp_path, **changes)
    assert expected in _one_line(lambda: main(["--resume", str(run)]))
    assert json.loads((run / "manifest.json").read_text()).get("status") == changes.get(
        "status", "interrupted"
    )  # untouched


def test_resume_of_the_manifest_file_names_the_directory(tmp_path: Path) -> None:
    from flows.train import main

    run = _unfinished_run(tmp_path)
    line = _one_line(lambda: main(["--resume", str(run / "manifest.json")]))
    assert f"is a file; give the run directory ({run})" in line


# ---- compare and verify --------------------------------------------------------------------


def _complete_run(root: Path, name: str, **changes: Any) -> Path:
    run = root / name
    run.mkdir(parents=True)
    stages = {s: {"seed": 1, "fingerprint": FP, "info": {}} for s in STAGES}
    manifest = {
        "run_id": name,
        "status": "complete",
        "settings": RunSettings().model_dump(mode="json"),
        "seeds": {"root": 0, "stages": dict.fromkeys(STAGES, 1), "pinned": []},
        "stages": stages,
        "metrics": {"test_accuracy": 0.5},
    }
    manifest = consistent({**manifest, "settings": changes.pop("settings", manifest["settings"])})
    for dotted, value in changes.items():  # after the seal: each case breaks it on purpose
        target = manifest
        *parents, last = dotted.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


@pytest.mark.parametrize(
    "change",
    [
        {"metrics": [1, 2]},
        {"seeds.stages": [1, 2]},
        {"seeds.pinned": 3},
        {"stages.train.info": "x"},
        {"stages.train.info": {"final": [1]}},
        {"environment": 7},
    ],
    ids=lambda c: next(iter(c)),
)
def test_compare_of_wrong_types_is_one_line(tmp_path: Path, change: dict) -> None:
    from flows.compare import main

    a = _complete_run(tmp_path, "a")
    b = _complete_run(tmp_path, "b", **change)
    line = _one_line(lambda: main([str(a), str(b)]))
    assert "corrupt manifest" in line or "cannot compare" in line


def test_a_failed_verify_leaves_no_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.verify import main

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    settings = RunSettings(
        output_dir=tmp_path / "runs",
        data={"kind": "file", "path": str(tmp_path / "gone.npz")},  # the data file is gone
    ).model_dump(mode="json")
    run = _complete_run(tmp_path, "run", settings=settings)
    assert "file not found" in _one_line(lambda: main([str(run)]))
    assert not any(temp.iterdir()), list(temp.iterdir())


def test_sweep_dir_that_is_a_file_leaves_nothing(tmp_path: Path) -> None:
    from flows.sweep import main

    file = tmp_path / "file"
    file.write_text("x")
    out = tmp_path / "runs"
    args = ["--seeds", "0", "--sweep-dir", str(file), "--output-dir", str(out)]
    assert "is not a directory" in _one_line(lambda: main(args))
    assert not out.exists()


# ---- as a user runs them ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model.conv-filters", "0"], "model.conv_filters"),
        (["--training.epoch", "3"], "did you mean --training.epochs?"),
        (["--resume"], "--resume: expected one argument"),
    ],
)
def test_subprocess_bad_input_is_one_line_exit_2(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    out = tmp_path / "runs"
    res = run_module(
        "flows.train", [*TINY, *args, "--output-dir", str(out)], cwd=tmp_path,
        prefect_home=tmp_path / "home", timeout=120,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().count("\n") == 0 and expected in res.stderr, res.stderr
    assert not out.exists() or not any(out.iterdir())


def test_manifest_fixture_is_sane(tmp_path: Path) -> None:
    """The helpers above build manifests that pass validation, so each case fails for its reason."""
    from seedtrail.cli.train_args import resumed_settings
    from seedtrail.compare.diff import read_run
    from seedtrail.compare.explanation import compare_manifests

    a, b = _complete_run(tmp_path, "a"), _complete_run(tmp_path, "b")
    result = compare_manifests(read_run(a), read_run(b))
    assert result.matches
    run = _unfinished_run(tmp_path)
    assert resumed_settings(run, []) == RunSettings(output_dir=tmp_path / "runs")
    assert copy.deepcopy(result.to_dict())["exit_code"] == 0
