"""The stages whose bytes travel across machines, computed the way the pipeline computes them.

Data, augment, split and model (initial weights) do not touch oneDNN's CPU-dependent
kernels: measured identical on an AVX2-only Zen 3 and an AVX-512 Zen 4 machine. The
golden file records them once; tests assert them on every machine.
"""

from __future__ import annotations

import numpy as np

from seedtrail.core.fingerprint import fingerprint_arrays
from seedtrail.runtime.keras_io import weights_fingerprint
from settings.model import RunSettings
from settings.seeds import SeedPlan
from tasks.augment import PREVIEW_EPOCH, augment_epoch, build_augmenter
from tasks.data import load_dataset
from tasks.model import build_model
from tasks.split import split_indices

TRAVELLING = ("data", "augment", "split", "model")


def travelling_fingerprints(settings: RunSettings) -> dict[str, str]:
    plan = SeedPlan.from_settings(settings)
    ds = load_dataset(settings.data, plan["data"])
    idx = np.arange(min(settings.augment.preview_samples, len(ds.x)))
    augmented = augment_epoch(
        build_augmenter(settings.augment), ds.x, idx, plan["augment"], PREVIEW_EPOCH
    )
    train, val, test = split_indices(ds.y, settings.split, plan["split"])
    model = build_model(
        settings.model, plan["model"], tuple(ds.x.shape[1:]), ds.n_classes, ds.modality
    )
    return {
        "data": fingerprint_arrays({"x": ds.x, "y": ds.y}),
        "augment": fingerprint_arrays({"preview": augmented}),
        "split": fingerprint_arrays({"train": train, "val": val, "test": test}),
        "model": weights_fingerprint(model),
    }
