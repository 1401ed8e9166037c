"""Labels to classes: a missing label is refused naming the rows; numbers sort as numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seedtrail.core.errors import InputError
from seedtrail.inputs.data_loader import validate
from tasks.data import read_csv, read_npz


def _csv(path: Path, labels: list[str]) -> Path:
    path.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{v}\n" for i, v in enumerate(labels)))
    return path


def _one_line(call) -> str:
    with pytest.raises(InputError) as err:
        call()
    (line,) = err.value.problems
    assert "\n" not in line
    return line


def test_empty_label_cells_are_refused_naming_the_lines(tmp_path: Path) -> None:
    """The trial's case: 5 empty cells trained with an extra class ''."""
    cells = ["x", "y"] * 5
    for i in (1, 3, 4, 7, 9):
        cells[i] = ""
    line = _one_line(lambda: read_csv(_csv(tmp_path / "d.csv", cells), "label"))
    # data rows start on line 2, after the header
    assert "column 'label' has 5 missing labels" in line and "lines 3, 5, 6, 9, 11" in line


def test_many_missing_labels_name_the_first_five_and_count_the_rest(tmp_path: Path) -> None:
    cells = ["NA"] * 12 + ["a", "b"]
    line = _one_line(lambda: read_csv(_csv(tmp_path / "d.csv", cells), "label"))
    assert "12 missing labels" in line and "lines 2, 3, 4, 5, 6 (+7 more)" in line


def test_numeric_labels_with_na_are_refused_not_turned_into_text(tmp_path: Path) -> None:
    """The trial's case: 1, 2, 10 and four NA became text classes ['1','10','2','NA']."""
    cells = ["1", "2", "10", "NA", "2", "NaN", "None", "1", ""]
    line = _one_line(lambda: read_csv(_csv(tmp_path / "d.csv", cells), "label"))
    assert "4 missing labels" in line and "lines 5, 7, 8, 10" in line


def test_numeric_labels_are_classes_in_numeric_order(tmp_path: Path) -> None:
    ds = read_csv(_csv(tmp_path / "d.csv", ["10", "1", "2", "10", "2", "1"]), "label")
    assert ds.class_names == ("1", "2", "10") and ds.y.tolist() == [2, 0, 1, 2, 1, 0]


def test_a_class_called_none_in_lower_case_is_a_class(tmp_path: Path) -> None:
    """Missing is what pandas reads as missing, case as written: "none" is a name."""
    ds = read_csv(_csv(tmp_path / "d.csv", ["none", "defect", "none", "defect"]), "label")
    assert ds.class_names == ("defect", "none")


@pytest.mark.parametrize(
    ("y", "where"),
    [
        (np.array(["a", "", "b", "a"]), "index 1"),
        (np.array([0.0, np.nan, 1.0, np.nan]), "indices 1, 3"),
        (np.array(["a", "nan", "b", "NA"]), "indices 1, 3"),
    ],
    ids=["empty", "nan", "text-na"],
)
def test_an_npz_with_missing_labels_is_refused(tmp_path: Path, y: np.ndarray, where: str) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((4, 2)), y=y)
    line = _one_line(lambda: read_npz(path))
    assert "y has" in line and "missing label" in line and where in line


def test_npz_text_labels_that_are_numbers_sort_numerically(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((4, 2)), y=np.array(["10", "2", "1", "2"]))
    assert read_npz(path).class_names == ("1", "2", "10")


@pytest.mark.parametrize(
    "y",
    [["a", None, "b", "a"], [0, 1, None, 1], [0.0, 1.0, float("nan"), 1.0], ["a", "b", "N/A", "b"]],
    ids=["none-object", "none-int", "nan", "text-na"],
)
def test_a_loader_with_missing_labels_is_refused(y: list) -> None:
    line = _one_line(lambda: validate((np.zeros((4, 2)), y), "proj.data:load"))
    assert line.startswith("data.loader: proj.data:load: y has 1 missing label")
    assert "index 2" in line or "index 1" in line


def test_a_loaders_numeric_text_labels_sort_numerically() -> None:
    got = validate((np.zeros((4, 2)), np.array(["10", "2", "1", "2"])), "proj.data:load")
    assert got.class_names == ("1", "2", "10") and got.y.tolist() == [2, 1, 0, 1]


def test_train_refuses_missing_labels_before_prefect_starts(tmp_path: Path) -> None:
    """One line, exit 2 (InputError), nothing left behind: preflight reads the file."""
    from flows.train import main

    data = _csv(tmp_path / "d.csv", ["a", "b", "", "a", "b", "a"] * 4)
    out = tmp_path / "runs"
    args = ["--data.kind", "file", "--data.path", str(data), "--output-dir", str(out)]
    line = _one_line(lambda: main(args))
    assert "4 missing labels" in line and "lines 4, 10, 16, 22" in line
    assert not out.exists() or not any(out.iterdir())
