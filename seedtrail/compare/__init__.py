"""Two runs side by side: what differs (diff), the verdict and its likely causes
(explanation), and the report as text or markdown (render).

Public names import lazily (PEP 562): importing the package costs nothing until one is used,
so a command can check its flags before TensorFlow or Prefect load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seedtrail.core.lazy import lazy_exports

if TYPE_CHECKING:
    from seedtrail.compare.diff import read_run
    from seedtrail.compare.explanation import Comparison, compare_manifests

__all__ = [
    "Comparison",
    "compare_manifests",
    "read_run",
]

_EXPORTS = {
    "Comparison": "explanation",
    "compare_manifests": "explanation",
    "read_run": "diff",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)
