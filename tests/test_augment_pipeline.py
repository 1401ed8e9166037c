"""Augmentation pipelines from albumentations' own file format, seeded per sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seedtrail.core.errors import InputError
from seedtrail.inputs.augment_pipeline import check_pipeline, load_pipeline, seeded
from tasks.augment import augment_epoch

A = pytest.importorskip("albumentations")


def nested_pipeline():
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.OneOf([A.Affine(rotate=(-20, 20), p=1.0), A.GaussianBlur(p=1.0)], p=0.8),
            A.RandomBrightnessContrast(p=0.5),
        ],
        seed=123,  # replaced per sample
    )


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_saved_pipeline_loads_and_is_hashed_by_content(tmp_path: Path, suffix: str):
    path = tmp_path / f"aug{suffix}"
    A.save(nested_pipeline(), path, data_format="json" if suffix == ".json" else "yaml")
    p = load_pipeline(path)
    assert isinstance(p.compose, A.Compose) and len(p.compose.transforms) == 3
    assert p.sha256 == load_pipeline(path).sha256
    path.write_text(path.read_text().replace("0.8", "0.7"))
    assert load_pipeline(path).sha256 != p.sha256


def test_images_do_not_depend_on_order(tmp_path: Path):
    path = tmp_path / "aug.json"
    A.save(nested_pipeline(), path)
    x = np.random.default_rng(0).random((12, 10, 10, 1), dtype=np.float32)
    idx = np.arange(12)
    forward = augment_epoch(seeded(load_pipeline(path)), x, idx, 7, 0)
    backward = augment_epoch(seeded(load_pipeline(path)), x, idx[::-1], 7, 0)
    assert np.array_equal(forward, backward[::-1])
    assert not np.array_equal(forward, augment_epoch(seeded(load_pipeline(path)), x, idx, 7, 1))


@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        ("aug.json", "{not json", r"not an albumentations pipeline \(JSONDecodeError"),
        (
            "aug.json",
            '{"transform": {"__class_fullname__": "NoSuchThing"}}',
            r"not an albumentations pipeline",
        ),
        ("aug.json", '{"a": 1}', r"not an albumentations pipeline"),
        ("aug.yaml", "transform: [unclosed", r"not an albumentations pipeline"),
        ("aug.txt", "{}", r"use a \.json, \.yaml or \.yml file"),
    ],
)
def test_invalid_files_are_one_line(tmp_path: Path, name: str, content: str, pattern: str):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=rf"^augment\.pipeline {path}: {pattern}") as err:
        load_pipeline(path)
    assert len(err.value.problems) == 1 and "\n" not in err.value.problems[0]


def test_missing_file_is_one_line(tmp_path: Path):
    with pytest.raises(InputError, match=r"^augment\.pipeline .*: cannot read \(FileNotFoundError"):
        load_pipeline(tmp_path / "nope.json")


def test_a_pipeline_that_changes_the_shape_or_fails_on_the_data_is_refused(tmp_path: Path):
    path = tmp_path / "crop.json"
    A.save(A.Compose([A.CenterCrop(4, 4)]), path)
    crop = load_pipeline(path)
    with pytest.raises(InputError, match=r"changes the image shape from \(8, 8, 1\) to \(4, 4"):
        check_pipeline(seeded(crop), (8, 8, 1), path)
    A.save(A.Compose([A.PlanckianJitter(p=1.0)]), path)  # needs 3 channels
    with pytest.raises(InputError, match=r"fails on float32 images of shape \(8, 8, 1\)"):
        check_pipeline(seeded(load_pipeline(path)), (8, 8, 1), path)
    A.save(A.Compose([A.FromFloat(p=1.0)]), path)
    with pytest.raises(InputError, match=r"into uint8"):
        check_pipeline(seeded(load_pipeline(path)), (8, 8, 1), path)
    A.save(nested_pipeline(), path)
    check_pipeline(seeded(load_pipeline(path)), (8, 8, 3), path)
