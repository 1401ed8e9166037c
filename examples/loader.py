"""A user's data loader: `--data.kind python --data.loader examples.loader:digits`.

seedtrail calls it with the data stage's seed and expects (x, y) or (x, y, class_names).
Use the seed for any sampling or shuffling; never an unseeded generator.
"""

from __future__ import annotations

import numpy as np


def digits(seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's 8x8 digits (shipped, no download), a seeded half of them, as images."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    keep = np.sort(np.random.default_rng(seed).permutation(len(x))[: len(x) // 2])
    images = (x[keep].reshape(-1, 8, 8, 1) / 16.0).astype(np.float32)
    return images, y[keep], [f"digit {d}" for d in range(10)]
