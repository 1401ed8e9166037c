"""Datasets generated or shipped with scikit-learn: pure numpy, no Prefect, no TensorFlow.

The data stage (tasks/data.py) and the plain-Keras benchmark baseline both use these,
so the baseline pays for nothing the pipeline adds.
"""

from __future__ import annotations

import math

import numpy as np

SHAPES = ("circle", "square", "triangle", "cross")


def synthetic_shapes(
    n: int, size: int, n_classes: int, noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy shapes at random position, size, rotation and brightness: a task that needs a CNN."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % n_classes).astype(np.int32)
    cx = rng.uniform(0.3, 0.7, n) * size
    cy = rng.uniform(0.3, 0.7, n) * size
    r = rng.uniform(0.18, 0.3, n) * size
    theta = rng.uniform(0.0, 2 * math.pi, n)
    level = rng.uniform(0.6, 1.0, n)

    grid = np.arange(size, dtype=np.float64) + 0.5
    dx = grid[None, None, :] - cx[:, None, None]
    dy = grid[None, :, None] - cy[:, None, None]
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    u, v = dx * c + dy * s, -dx * s + dy * c
    rr = r[:, None, None]

    circle = u**2 + v**2 <= rr**2
    square = np.maximum(np.abs(u), np.abs(v)) <= 0.8 * rr
    triangle = np.ones_like(circle)
    for k in range(3):  # equilateral: inside three half-planes
        a = math.pi / 2 + k * 2 * math.pi / 3
        triangle &= u * math.cos(a) + v * math.sin(a) <= 0.5 * rr
    arm = 0.28 * rr
    cross = ((np.abs(u) <= arm) & (np.abs(v) <= rr)) | ((np.abs(v) <= arm) & (np.abs(u) <= rr))
    masks = np.stack([circle, square, triangle, cross])[:n_classes]

    shape = masks[y, np.arange(n)]
    img = shape * level[:, None, None] + rng.normal(0.0, noise, (n, size, size))
    x = np.clip(img, 0.0, 1.0).astype(np.float32)[..., None]
    return x, y


def tabular(n: int, n_features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's classic random binary classification task."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=n,
        n_features=n_features,
        n_informative=max(2, n_features // 2),
        n_redundant=min(2, n_features - max(2, n_features // 2)),
        n_classes=2,
        flip_y=0.01,
        random_state=seed,
    )
    return x.astype(np.float32), y.astype(np.int32)


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 handwritten digits that ship with scikit-learn (no download)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x.reshape(-1, 8, 8, 1) / 16.0).astype(np.float32), y.astype(np.int32)
