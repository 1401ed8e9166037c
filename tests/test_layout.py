"""The code's layout: layers import only downwards, and no module outgrows a sitting's read.

Every module of the library (seedtrail/), the configuration (settings/), the stages
(tasks/) and the flows (flows/) belongs to one layer; a module may import its own layer
and the layers below it, never one above. Imports are read with `ast`, so the check sees
imports inside functions, under TYPE_CHECKING and through `importlib.import_module("...")`
with a literal name: a lazy or hidden upward import fails as surely as a top-level one.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("seedtrail", "settings", "tasks", "flows")

#: Lowest first. A module belongs to the layer of the longest prefix that names it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("seedtrail.core",),  # the framework and the pipeline table: imports nothing of ours
    ("settings",),  # the configuration: its models read the pipeline table
    # Prefect plumbing. deployments.py imports flows/ by path at run time (load_flow):
    # the one upward dependency left, invisible to this check because the name is computed.
    ("seedtrail.prefect",),
    ("seedtrail.runtime",),  # this process's TensorFlow, the machine
    ("seedtrail.inputs",),  # data sets, the user's code and files (may need TensorFlow)
    ("tasks",),  # the stages, built on the layers above
    ("seedtrail.run",),  # one run: the pipeline over tasks/
    ("seedtrail.compare",),
    ("seedtrail.sweep",),
    ("seedtrail.cli",),
    ("flows",),
)


def layer_of(module: str) -> int | None:
    """The layer index of a dotted module name (None: not ours, e.g. numpy)."""
    best: tuple[int, int] | None = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            named = module == prefix or module.startswith(prefix + ".")
            if named and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def layer_name(index: int) -> str:
    return LAYERS[index][0]


@dataclass(frozen=True)
class Violation:
    module: str
    target: str
    line: int

    def __str__(self) -> str:
        a, b = layer_of(self.module), layer_of(self.target)
        assert a is not None and b is not None
        return (
            f"{self.module}:{self.line} imports {self.target}: layer {layer_name(a)} "
            f"must not import the higher layer {layer_name(b)}"
        )


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module of a relative import (`from . import x` inside `module`)."""
    if level == 0:
        return name or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[str, int]]:
    """Every module `source` imports, wherever the statement is, with its line."""
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            # `from seedtrail.run import pipeline` imports the module seedtrail.run.pipeline
            out += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, ast.Call) and node.args:
            fn = node.func
            called = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            arg = node.args[0]
            if (
                called in ("import_module", "__import__")
                and isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
            ):
                out.append((arg.value, node.lineno))
    return out


def check_source(source: str, module: str, is_package: bool = False) -> list[Violation]:
    """The upward imports of one module's source."""
    own = layer_of(module)
    if own is None:
        return []
    found = []
    for target, line in imported_modules(source, module, is_package):
        theirs = layer_of(target)
        if theirs is not None and theirs > own:
            found.append(Violation(module, target, line))
    return found


def modules() -> list[tuple[str, Path]]:
    out = []
    for top in CHECKED:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out.append((name, path))
    return out


def test_every_module_has_a_layer() -> None:
    orphans = [name for name, _ in modules() if name != "seedtrail" and layer_of(name) is None]
    assert not orphans, f"modules in no layer (add them to LAYERS): {orphans}"


def test_lower_layers_never_import_higher_ones() -> None:
    violations = [
        str(v)
        for name, path in modules()
        for v in check_source(path.read_text(), name, path.name == "__init__.py")
    ]
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize(
    "source",
    [
        "from seedtrail.run.pipeline import run_training\n",
        "def f():\n    from tasks import train\n",  # inside a function
        "import importlib\n\ndef f():\n    importlib.import_module('tasks.train')\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import flows.train\n",
        "from ..run import pipeline\n",  # relative, from seedtrail.core.fake
    ],
)
def test_the_check_catches_an_upward_import(source: str) -> None:
    (violation,) = check_source(source, "seedtrail.core.fake")
    assert violation.module == "seedtrail.core.fake"
    assert "layer seedtrail.core must not import the higher layer" in str(violation)


def test_the_check_lets_a_layer_import_itself_and_below() -> None:
    source = (
        "from seedtrail.core.errors import InputError\nfrom settings.model import RunSettings\n"
    )
    assert check_source(source, "tasks.fake") == []
    assert check_source("import numpy\nfrom . import store\n", "seedtrail.core.fake") == []


# --- size -----------------------------------------------------------------------------------

MAX_LINES = 400


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for _, path in modules()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them): {long}"


# --- public surfaces ------------------------------------------------------------------------


@pytest.mark.parametrize("package", ["core", "runtime", "inputs", "run", "compare", "sweep", "cli"])
def test_each_layer_exports_what_its_all_names(package: str) -> None:
    module = importlib.import_module(f"seedtrail.{package}")
    assert module.__doc__, f"seedtrail.{package} has no docstring"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"seedtrail.{package}.__all__ names what it does not export: {missing}"
