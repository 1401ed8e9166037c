"""What a run reads: built-in data sets, the user's data (files, image folders, loaders),
model builders and augmentation pipeline files, and the user inputs' content record.

Public names import lazily (PEP 562): importing the package costs nothing until one is used,
so a command can check its flags before TensorFlow or Prefect load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seedtrail.core.lazy import lazy_exports

if TYPE_CHECKING:
    from seedtrail.inputs.augment_pipeline import (
        SampleSeededAugmenter,
        check_pipeline,
        load_pipeline,
        seeded,
    )
    from seedtrail.inputs.datasets import SHAPES, digits, synthetic_shapes, tabular
    from seedtrail.inputs.model_builder import build_seeded
    from seedtrail.inputs.user_inputs import changes

__all__ = [
    "SHAPES",
    "SampleSeededAugmenter",
    "build_seeded",
    "changes",
    "check_pipeline",
    "digits",
    "load_pipeline",
    "seeded",
    "synthetic_shapes",
    "tabular",
]

_EXPORTS = {
    "SHAPES": "datasets",
    "SampleSeededAugmenter": "augment_pipeline",
    "build_seeded": "model_builder",
    "changes": "user_inputs",
    "check_pipeline": "augment_pipeline",
    "digits": "datasets",
    "load_pipeline": "augment_pipeline",
    "seeded": "augment_pipeline",
    "synthetic_shapes": "datasets",
    "tabular": "datasets",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)
