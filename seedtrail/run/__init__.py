"""One training run end to end: the pipeline over the stages (tasks/), its run directory,
manifest (and older manifests' migration), report and TensorBoard logs.

Public names import lazily (PEP 562): importing the package costs nothing until one is used,
so a command can check its flags before TensorFlow or Prefect load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seedtrail.core.lazy import lazy_exports

if TYPE_CHECKING:
    from seedtrail.run.manifest import (
        COMPLETE,
        MANIFEST,
        Manifest,
        Metrics,
        NotARun,
        parse_manifest,
        read_manifest,
    )
    from seedtrail.run.pipeline import preflight, run_training, will_train
    from seedtrail.run.report import headline, png_markdown, result_line, short, terminal_summary
    from seedtrail.run.rundir import settings_fingerprint

__all__ = [
    "COMPLETE",
    "MANIFEST",
    "Manifest",
    "Metrics",
    "NotARun",
    "headline",
    "parse_manifest",
    "png_markdown",
    "preflight",
    "read_manifest",
    "result_line",
    "run_training",
    "settings_fingerprint",
    "short",
    "terminal_summary",
    "will_train",
]

_EXPORTS = {
    "COMPLETE": "manifest",
    "MANIFEST": "manifest",
    "Manifest": "manifest",
    "Metrics": "manifest",
    "NotARun": "manifest",
    "headline": "report",
    "parse_manifest": "manifest",
    "png_markdown": "report",
    "preflight": "pipeline",
    "read_manifest": "manifest",
    "result_line": "report",
    "run_training": "pipeline",
    "settings_fingerprint": "rundir",
    "short": "report",
    "terminal_summary": "report",
    "will_train": "pipeline",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)
