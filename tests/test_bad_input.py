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


# ---- issue 24: settings that were accepted wrongly, or named unhelpfully ---------------------


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[training]\nepochs = true\n", "training.epochs: must be a number, not true/false"),
        ("seed = false\n", "seed: must be a number, not true/false"),
        ("[data]\nnoise = true\n", "data.noise: must be a number, not true/false"),
        ("[model]\nconv_filters = [8, true]\n", "model.conv_filters: must be a number"),
        ("[seeds]\nmodel = true\n", "seeds.model: must be a number, not true/false"),
    ],
)
def test_a_boolean_for_a_number_in_toml_is_refused(
    tmp_path: Path, toml: str, expected: str
) -> None:
    """`epochs = true` trained 1 epoch, while `--training.epochs true` was refused."""
    config = tmp_path / "run.toml"
    config.write_text(toml)
    assert expected in _train(["--config", str(config)], tmp_path / "runs")


def test_a_boolean_setting_still_takes_a_boolean(tmp_path: Path) -> None:
    from settings.cli import load_settings

    config = tmp_path / "run.toml"
    config.write_text("[augment]\nenabled = false\n[training]\nepochs = 3\n")
    s = load_settings(["--config", str(config)])
    assert (s.augment.enabled, s.training.epochs) == (False, 3)


@pytest.mark.parametrize("value", ["[1,2]", "3", '"text"', "{bad"])
def test_model_options_flag_that_is_not_an_object(tmp_path: Path, value: str) -> None:
    args = ["--model.builder", "examples.model:build", "--model.options", value]
    line = _train(args, tmp_path / "runs")
    assert line.startswith("model.options: expected a JSON object"), line
    assert repr(value) in line


def test_model_options_env_var_names_the_variable_and_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEEDTRAIL_MODEL__OPTIONS", "[1, 2")
    line = _train(["--model.builder", "examples.model:build"], tmp_path / "runs")
    assert "SEEDTRAIL_MODEL__OPTIONS" in line and "'[1, 2'" in line, line


def test_a_bad_env_value_names_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEEDTRAIL_TRAINING__EPOCHS", "0")
    line = _train([], tmp_path / "runs")
    assert line.startswith("training.epochs:") and "SEEDTRAIL_TRAINING__EPOCHS='0'" in line, line


def test_data_kind_is_inferred_from_loader_or_path(tmp_path: Path) -> None:
    """`--data.loader X` or `--data.path f.npz` alone trained on synthetic data, silently."""
    from settings.cli import load_settings

    folder = tmp_path / "images"
    folder.mkdir()
    assert load_settings(["--data.loader", "examples.loader:load"]).data.kind == "python"
    for name, kind in (("d.npz", "file"), ("d.CSV", "file"), (str(folder), "images")):
        assert load_settings(["--data.path", str(tmp_path / name)]).data.kind == kind
    assert load_settings([]).data.kind == "synthetic"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--data.path", "data.parquet"], "data: cannot tell data.kind from data.path"),
        (["--data.path", "d.npz", "--data.loader", "a.b:c"], "set data.kind"),
        (["--data.kind", "synthetic", "--data.path", "d.npz"], "data.path is read only with"),
        (["--data.kind", "digits", "--data.loader", "a.b:c"], "data.loader is read only with"),
    ],
)
def test_data_settings_that_would_be_ignored_are_refused(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    assert expected in _train(args, tmp_path / "runs")


# ---- issue 24: the user's code raises -----------------------------------------------------------

USER_MODULE = """
import numpy as np


def _deeper(n):
    raise ValueError(f"broken for {n}")


def build(input_shape, n_classes):
    return _deeper(n_classes)


def load(seed):
    return _deeper("the loader")
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--model.builder", "usermod:build"], "model.builder: usermod:build raised ValueError: broken for 4"),
        (["--data.loader", "usermod:load"], "data.loader: usermod:load raised ValueError: broken for the loader"),
    ],
)  # fmt: skip
def test_user_code_that_raises_is_one_line_then_its_own_frames(
    tmp_path: Path, prefect_api_url: str, flags: list[str], line: str
) -> None:
    """Before: 3 tracebacks through Prefect's internals (176 lines), exit 1, a failed run."""
    (tmp_path / "usermod.py").write_text(USER_MODULE)
    out = tmp_path / "runs"
    res = run_module(
        "flows.train", [*TINY, *flags, "--output-dir", str(out)], cwd=tmp_path,
        prefect_home=tmp_path / "home", env={"PREFECT_API_URL": prefect_api_url}, timeout=300,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    lines = [x for x in res.stderr.splitlines() if " | " not in x]  # not Prefect's log lines
    lines = [x for x in lines if not x.startswith(("WARNING: All log", "I0000"))]  # absl
    assert lines[0] == f"error: {line}", res.stderr
    files = [x for x in lines[1:] if x.lstrip().startswith("File ")]
    assert len(files) == 2 and all("usermod.py" in f for f in files), res.stderr
    assert "Traceback" not in res.stderr and "ERROR" not in res.stderr, res.stderr
    assert len(lines) <= 1 + 2 * 3, res.stderr  # the line, then each frame: file, code, ^^^
    assert not out.exists() or not [p for p in out.iterdir() if p.name != ".store"]


# ---- issue 24: an output folder that cannot take files, found before Prefect starts ----------


@pytest.mark.parametrize(
    ("output_dir", "expected"),
    [
        # /proc: exists, and no one (root included) can create a file in it
        ("/proc/self", "output_dir: cannot write in /proc/self"),
        ("/proc/self/runs", "output_dir: cannot create /proc/self/runs"),
    ],
)
def test_an_output_dir_that_takes_no_files_is_one_line(output_dir: str, expected: str) -> None:
    from flows.train import main

    assert _one_line(lambda: main([*TINY, "--output-dir", output_dir])).startswith(expected)


def test_an_output_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    from flows.train import main

    file = tmp_path / "runs"
    file.write_text("not a folder")
    line = _one_line(lambda: main([*TINY, "--output-dir", str(file)]))
    assert line == f"output_dir: {file} is a file, not a folder"
    line = _one_line(lambda: main([*TINY, "--output-dir", str(file / "sub")]))
    assert line.startswith(f"output_dir: cannot create {file / 'sub'}")


def test_a_read_only_mount_is_one_line(tmp_path: Path) -> None:
    """A real read-only mount where this user may mount one (root); /proc covers the rest."""
    import subprocess

    from flows.train import main

    mnt = tmp_path / "ro"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mnt)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("mount not permitted here (not root): /proc is the read-only case")
    try:
        line = _one_line(lambda: main([*TINY, "--output-dir", str(mnt)]))
        assert line == f"output_dir: cannot write in {mnt} (Read-only file system)"
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
