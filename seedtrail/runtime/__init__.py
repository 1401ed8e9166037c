"""This process's runtime: TensorFlow and its configuration (tf_runtime), the machine
(hardware), quiet imports, Keras model files, training checkpoints and sharded steps.

Public names import lazily (PEP 562): importing the package costs nothing until one is used,
so a command can check its flags before TensorFlow or Prefect load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seedtrail.core.lazy import lazy_exports

if TYPE_CHECKING:
    from seedtrail.runtime.checkpoint import load_checkpoint, save_checkpoint
    from seedtrail.runtime.hardware import explain
    from seedtrail.runtime.keras_io import load_model, save_model, weights_fingerprint
    from seedtrail.runtime.quiet import set_quiet_environment, settle
    from seedtrail.runtime.shards import machine_threads, sharded

__all__ = [
    "explain",
    "load_checkpoint",
    "load_model",
    "machine_threads",
    "save_checkpoint",
    "save_model",
    "set_quiet_environment",
    "settle",
    "sharded",
    "weights_fingerprint",
]

_EXPORTS = {
    "explain": "hardware",
    "load_checkpoint": "checkpoint",
    "load_model": "keras_io",
    "machine_threads": "shards",
    "save_checkpoint": "checkpoint",
    "save_model": "keras_io",
    "set_quiet_environment": "quiet",
    "settle": "quiet",
    "sharded": "shards",
    "weights_fingerprint": "keras_io",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)
