"""Split and augmentation: seeded, stratified, order-independent, blind to global seeds."""

from __future__ import annotations

import random

import numpy as np

from settings import AugmentSettings, DataSettings, SplitSettings
from tasks.augment import augment_epoch, build_augmenter
from tasks.data import load_dataset
from tasks.split import split_indices

Y = np.repeat(np.arange(3), 50)


def test_split_is_a_stratified_partition() -> None:
    train, val, test = split_indices(Y, SplitSettings(test_size=0.2, val_size=0.2), 7)
    all_idx = np.concatenate([train, val, test])
    assert np.array_equal(np.sort(all_idx), np.arange(len(Y)))
    assert len(test) == 30 and len(val) == 30
    for part in (train, val, test):  # every class in proportion
        counts = np.bincount(Y[part], minlength=3)
        assert counts.max() - counts.min() <= 1


def test_split_depends_on_its_seed_only() -> None:
    s = SplitSettings()
    a, b = split_indices(Y, s, 1), split_indices(Y, s, 1)
    np.random.seed(123)  # global state must not matter
    c = split_indices(Y, s, 1)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert all(np.array_equal(p, q) for p, q in zip(a, c, strict=True))
    assert not np.array_equal(a[2], split_indices(Y, s, 2)[2])


X = load_dataset(DataSettings(n_samples=64, image_size=16), 0).x


def test_augmentation_does_not_depend_on_sample_order() -> None:
    aug = build_augmenter(AugmentSettings())
    idx = np.arange(32)
    forward = augment_epoch(aug, X, idx, augment_seed=5, epoch=0)
    backward = augment_epoch(aug, X, idx[::-1], augment_seed=5, epoch=0)
    assert np.array_equal(forward, backward[::-1])
    assert not np.array_equal(forward, X[idx])  # it did change the images


def test_augmentation_is_fresh_each_epoch_and_per_seed() -> None:
    aug = build_augmenter(AugmentSettings())
    idx = np.arange(16)
    e0 = augment_epoch(aug, X, idx, 5, 0)
    assert not np.array_equal(e0, augment_epoch(aug, X, idx, 5, 1))
    assert not np.array_equal(e0, augment_epoch(aug, X, idx, 6, 0))


def test_augmentation_ignores_global_seeds_and_fresh_pipelines_agree() -> None:
    idx = np.arange(16)
    random.seed(1)
    np.random.seed(1)
    a = augment_epoch(build_augmenter(AugmentSettings()), X, idx, 9, 3)
    random.seed(2)
    np.random.seed(2)
    b = augment_epoch(build_augmenter(AugmentSettings()), X, idx, 9, 3)
    assert np.array_equal(a, b)
