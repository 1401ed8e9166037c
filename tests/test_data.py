"""Data stage: generators are seeded and real; user files load or fail with one clear line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seedtrail.core.errors import InputError
from settings import DataSettings, SplitSettings
from tasks.data import describe, load_dataset
from tasks.split import split_indices


def test_synthetic_is_a_function_of_the_seed() -> None:
    s = DataSettings(n_samples=100, image_size=16)
    a, b, c = load_dataset(s, 1), load_dataset(s, 1), load_dataset(s, 2)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.x, c.x)
    assert a.x.shape == (100, 16, 16, 1) and a.x.dtype == np.float32
    assert a.x.min() >= 0.0 and a.x.max() <= 1.0
    assert np.bincount(a.y).tolist() == [25, 25, 25, 25]


def test_synthetic_classes_differ_in_shape_not_just_noise() -> None:
    ds = load_dataset(DataSettings(n_samples=400, image_size=24, noise=0.0), 0)
    means = [ds.x[ds.y == k].mean(axis=0) for k in range(4)]
    # the class-mean images differ clearly: there is signal to learn
    assert min(np.abs(means[i] - means[j]).sum() for i in range(4) for j in range(i + 1, 4)) > 5


def test_digits_is_the_real_scikit_learn_set() -> None:
    ds = load_dataset(DataSettings(kind="digits"), 0)
    assert ds.x.shape == (1797, 8, 8, 1) and ds.n_classes == 10
    assert describe(ds)["source"] == "sklearn digits"


def test_tabular_is_binary_and_seeded() -> None:
    s = DataSettings(kind="tabular", n_samples=200, n_features=6)
    a = load_dataset(s, 3)
    assert a.x.shape == (200, 6) and a.modality == "tabular" and a.n_classes == 2
    assert not np.array_equal(a.x, load_dataset(s, 4).x)


def _file(path: Path, **kw: object) -> DataSettings:
    return DataSettings(kind="file", path=path, **kw)


def test_npz_images_and_string_labels(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    x = np.random.default_rng(0).integers(0, 256, (30, 10, 10), dtype=np.uint8)
    np.savez(p, x=x, y=np.array(["cat", "dog", "eel"] * 10))
    ds = load_dataset(_file(p), 0)
    assert ds.x.shape == (30, 10, 10, 1) and ds.x.max() <= 1.0
    assert ds.class_names == ("cat", "dog", "eel") and ds.modality == "image"


def test_csv_with_label_column(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_text("a,b,target\n" + "".join(f"{i},{i * 2.5},{i % 2}\n" for i in range(20)))
    ds = load_dataset(_file(p, label_column="target"), 0)
    assert ds.x.shape == (20, 2) and ds.modality == "tabular"
    assert ds.class_names == ("0", "1")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: d / "missing.npz", "file not found"),
        (lambda d: _write(d / "bad.npz", b"this is not a zip"), "not a readable .npz"),
        (lambda d: _npz(d / "w.npz", a=np.zeros(3)), "needs arrays 'x' and 'y'"),
        (lambda d: _npz(d / "n.npz", x=np.full((9, 2), np.nan), y=np.arange(9) % 2), "NaN"),
        (lambda d: _npz(d / "m.npz", x=np.zeros((9, 2)), y=np.arange(8) % 2), "9 samples"),
        (lambda d: _npz(d / "o.npz", x=np.zeros((9, 2)), y=np.zeros(9)), "at least 2 classes"),
        (lambda d: _write(d / "t.csv", b"a,label\nfoo,1\n2,0\n"), "column 'a' line 2"),
        (lambda d: _write(d / "u.csv", b"a,b\n1,2\n"), "data.label_column"),
        (lambda d: _write(d / "v.txt", b"1,2"), "unsupported file type"),
    ],
)
def test_bad_user_files_fail_with_one_line(tmp_path: Path, make, expected: str) -> None:
    with pytest.raises(InputError) as info:
        load_dataset(_file(make(tmp_path)), 0)
    assert len(info.value.problems) == 1 and expected in info.value.problems[0]


def test_too_few_samples_for_the_split(tmp_path: Path) -> None:
    p = _npz(tmp_path / "few.npz", x=np.zeros((8, 2)), y=np.arange(8) % 2)
    ds = load_dataset(_file(p), 0)
    with pytest.raises(InputError, match="too few"):
        split_indices(ds.y, SplitSettings(), 0)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path
