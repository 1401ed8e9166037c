"""PEP 562 lazy exports for the layers' `__init__`s: a public name imports its module on use.

    __getattr__ = lazy_exports(__name__, {"Manifest": "manifest", ...})

Importing a layer then costs nothing until a name is used, so a command can check its
flags before TensorFlow or Prefect load (tests/test_layout.py checks it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """The module `__getattr__` of `package`: name -> its submodule (relative), imported on use."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
