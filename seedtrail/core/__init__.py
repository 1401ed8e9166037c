"""The framework: the stage declaration, its cache key, cache and records, the array store,
fingerprints, atomic files, the pipeline table (the stages' names, in order, and their roles),
the stages' wiring (how the pipeline feeds each) and the stage thread's own `random` stream.

The bottom layer: it imports no other part of seedtrail (tests/test_layout.py).

The decorator `stage` is not re-exported: `seedtrail.core.stage` is its module's name
(import it as `from seedtrail.core.stage import stage`).

Public names import lazily (PEP 562): importing the package costs nothing until one is used,
so a command can check its flags before TensorFlow or Prefect load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seedtrail.core.lazy import lazy_exports

if TYPE_CHECKING:
    from seedtrail.core.atomic import atomic_path
    from seedtrail.core.errors import InputError
    from seedtrail.core.fingerprint import (
        fingerprint_arrays,
        fingerprint_json,
        fingerprint_sequence,
        sha256_file,
    )
    from seedtrail.core.pipeline_table import (
        ENVIRONMENT_STAGE,
        EPOCH_STAGE,
        PIPELINE,
        STAGES,
        VARY_STAGES,
        StageSpec,
        declared,
    )
    from seedtrail.core.plots import plot_distribution, save_preview, training_curves
    from seedtrail.core.stage import DeclaredStage
    from seedtrail.core.stage_cache import StageContext
    from seedtrail.core.stage_result import StageOutput, StageResult
    from seedtrail.core.store import CorruptEntry, load_arrays, put_arrays, store_dir
    from seedtrail.core.tables import markdown_table, text_table
    from seedtrail.core.wiring import Preflight, Wiring

__all__ = [
    "ENVIRONMENT_STAGE",
    "EPOCH_STAGE",
    "PIPELINE",
    "STAGES",
    "VARY_STAGES",
    "CorruptEntry",
    "DeclaredStage",
    "InputError",
    "Preflight",
    "StageContext",
    "StageOutput",
    "StageResult",
    "StageSpec",
    "Wiring",
    "atomic_path",
    "declared",
    "fingerprint_arrays",
    "fingerprint_json",
    "fingerprint_sequence",
    "load_arrays",
    "markdown_table",
    "plot_distribution",
    "put_arrays",
    "save_preview",
    "sha256_file",
    "store_dir",
    "text_table",
    "training_curves",
]

_EXPORTS = {
    "ENVIRONMENT_STAGE": "pipeline_table",
    "EPOCH_STAGE": "pipeline_table",
    "CorruptEntry": "store",
    "DeclaredStage": "stage",
    "InputError": "errors",
    "PIPELINE": "pipeline_table",
    "STAGES": "pipeline_table",
    "StageContext": "stage_cache",
    "StageOutput": "stage_result",
    "StageResult": "stage_result",
    "StageSpec": "pipeline_table",
    "Preflight": "wiring",
    "Wiring": "wiring",
    "VARY_STAGES": "pipeline_table",
    "atomic_path": "atomic",
    "declared": "pipeline_table",
    "fingerprint_arrays": "fingerprint",
    "fingerprint_json": "fingerprint",
    "fingerprint_sequence": "fingerprint",
    "load_arrays": "store",
    "markdown_table": "tables",
    "plot_distribution": "plots",
    "put_arrays": "store",
    "save_preview": "plots",
    "sha256_file": "fingerprint",
    "store_dir": "store",
    "text_table": "tables",
    "training_curves": "plots",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)
