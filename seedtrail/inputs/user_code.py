"""The user's own code, named `package.module:function` in a setting.

Two separate steps, so a cached rerun never runs (or imports) user code:
- `fingerprint_code(ref, setting)` reads source files only, never executes them: the
  module of the function and every module of the user's project that it imports,
  transitively. A module belongs to the user's project when its file lies outside the
  standard library and site-packages. Their sha256s go into cache keys and the manifest,
  per module, so a comparison can say which module changed.
- `resolve(ref, setting)` imports the module and returns the callable, when the stage runs.

Every problem is one InputError line that names the setting.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.machinery
import site
import sysconfig
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from seedtrail.core.errors import InputError, UserCodeError

#: seedtrail's own packages: never the user's frames, though they lie outside site-packages.
_OWN = tuple(
    Path(__file__).resolve().parents[2] / p for p in ("seedtrail", "tasks", "flows", "settings")
)


@dataclass(frozen=True)
class CodeRef:
    module: str
    function: str

    def __str__(self) -> str:
        return f"{self.module}:{self.function}"


@dataclass(frozen=True)
class CodeFingerprint:
    """sha256 over the user's modules (name and source), and each module's own sha256."""

    digest: str
    modules: dict[str, str]  # module name -> sha256 of its source file, sorted by name


def parse_ref(ref: str, setting: str) -> CodeRef:
    module, sep, function = ref.strip().partition(":")
    names = [*module.split("."), *function.split(".")]
    if not sep or not module or not function or not all(n.isidentifier() for n in names):
        raise InputError(
            f"{setting}: {ref!r} is not 'package.module:function' (e.g. examples.model:build)"
        )
    return CodeRef(module, function)


# --- where a module's file is, without importing it ---------------------------------------


@cache
def _installed_roots() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.update(site.getsitepackages())
    roots.add(site.getusersitepackages())
    return tuple(Path(r).resolve() for r in roots)


def is_project_file(path: Path) -> bool:
    """A file of the user's project: not in the standard library or an installed package."""
    resolved = path.resolve()
    if {"site-packages", "dist-packages"} & set(resolved.parts):
        return False
    return not any(resolved.is_relative_to(root) for root in _installed_roots())


def find_source(module: str) -> Path | None:
    """The .py file of `module`, found like `import` would but without running any code."""
    spec = None
    search = None  # top level: sys.path
    for name in [*_parents(module), module]:
        spec = importlib.machinery.PathFinder.find_spec(name, search)
        if spec is None:
            return None
        search = spec.submodule_search_locations
        if search is None and name != module:
            return None  # a plain module has no submodules
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None  # builtin, extension, namespace package
    return Path(spec.origin)


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Every module name an import statement in `tree` may load (submodules included)."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):  # imports inside functions count too: they run when called
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                base_parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            if not base:
                continue
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    # `import a.b.c` also runs a and a.b
    for name in list(names):
        parts = name.split(".")
        names.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return names


# CPython 3.11 (checked on 3.11.7) keeps one AST-construction depth counter per
# interpreter, not per thread: an `ast.parse` while another thread builds an AST (the
# background TensorFlow import, Prefect's threads) can fail with this SystemError although
# the source is fine (python/cpython#106905; seen once in the suite). Each call starts the
# counter afresh, so parsing again is the workaround.
_AST_RACE = "AST constructor recursion depth mismatch"
_AST_TRIES = 5


def _parse(path: Path, setting: str, parse: Callable[..., ast.Module] = ast.parse) -> ast.Module:
    try:
        source = path.read_bytes()
        for _ in range(_AST_TRIES - 1):
            try:
                return parse(source, filename=str(path))
            except SystemError as err:
                if _AST_RACE not in str(err):
                    raise
        return parse(source, filename=str(path))
    except (OSError, SyntaxError, ValueError) as err:
        raise InputError(f"{setting}: cannot read {path} ({type(err).__name__}: {err})") from None


def project_modules(module: str, setting: str) -> dict[str, Path]:
    """`module` and the user's project modules it imports, transitively: name -> file."""
    root = find_source(module)
    if root is None:
        raise InputError(f"{setting}: no module named {module!r} (looked in the Python path)")
    found: dict[str, Path] = {}
    todo = [module, *_parents(module)]  # importing a.b runs a/__init__.py first
    while todo:
        name = todo.pop()
        if name in found:
            continue
        path = root if name == module else find_source(name)
        if path is None or not is_project_file(path):
            continue  # not found (optional import), stdlib or an installed package
        found[name] = path
        tree = _parse(path, setting)
        todo.extend(_imported_names(tree, name, path.name == "__init__.py"))
    return dict(sorted(found.items()))


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _top_level_binding(tree: ast.Module, name: str) -> ast.AST | bool | None:
    """The statement that binds `name` at module level; True if it cannot be known statically."""
    found: ast.AST | None = None
    unknown = False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                found = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                found = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    unknown = True
                if (alias.asname or alias.name.split(".")[0]) == name:
                    found = node
        elif isinstance(node, ast.If | ast.Try | ast.With):
            unknown = True  # conditional definitions: only an import can tell
    return found if found is not None else (True if unknown else None)


#: Module-level values that are plainly data, by the type they evaluate to.
_DATA = {
    ast.List: "list",
    ast.Tuple: "tuple",
    ast.Dict: "dict",
    ast.Set: "set",
    ast.JoinedStr: "str",
}


def check_defined(ref: CodeRef, path: Path, setting: str) -> None:
    """Without running it: the module defines `ref.function`, and not as plain data."""
    if "." in ref.function:
        return  # an attribute path (Class.method): only an import can tell
    binding = _top_level_binding(_parse(path, setting), ref.function)
    if binding is None:
        raise InputError(f"{setting}: module {ref.module} has no function {ref.function!r}")
    value = getattr(binding, "value", None)
    if isinstance(binding, ast.Assign | ast.AnnAssign) and value is not None:
        kind = (
            type(value.value).__name__
            if isinstance(value, ast.Constant)
            else _DATA.get(type(value))
        )
        if kind is not None:
            raise InputError(f"{setting}: {ref} is not callable (it is a {kind})")


def fingerprint_code(ref: str | CodeRef, setting: str) -> CodeFingerprint:
    """Hash the source of `ref`'s module and of the user's modules it imports (no import)."""
    ref = parse_ref(ref, setting) if isinstance(ref, str) else ref
    modules = project_modules(ref.module, setting)
    check_defined(ref, modules[ref.module], setting)
    per_module = {
        name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in modules.items()
    }
    h = hashlib.sha256()
    for name, digest in per_module.items():  # sorted by module name: stable across machines
        h.update(f"{name}\0{digest}\n".encode())
    return CodeFingerprint(h.hexdigest(), per_module)


def changed_modules(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Modules added, removed or edited between two CodeFingerprint.modules, sorted."""
    return sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))


def resolve(ref: str | CodeRef, setting: str) -> Callable[..., Any]:
    """Import the module and return the named callable; one InputError line otherwise."""
    ref = parse_ref(ref, setting) if isinstance(ref, str) else ref
    try:
        module = importlib.import_module(ref.module)
    except ModuleNotFoundError as err:
        if err.name is not None and (
            err.name == ref.module or ref.module.startswith(err.name + ".")
        ):
            raise InputError(f"{setting}: no module named {ref.module!r}") from None
        raise InputError(f"{setting}: importing {ref.module} failed: {_one_line(err)}") from None
    except Exception as err:  # the user's module raised while importing
        raise UserCodeError(
            f"{setting}: importing {ref.module} failed: {_one_line(err)}", user_frames(err)
        ) from None
    obj: Any = module
    for attr in ref.function.split("."):
        if not hasattr(obj, attr):
            raise InputError(f"{setting}: module {ref.module} has no function {ref.function!r}")
        obj = getattr(obj, attr)
    if not callable(obj):
        raise InputError(f"{setting}: {ref} is not callable (it is a {type(obj).__name__})")
    return obj


def _one_line(err: BaseException) -> str:
    text = (str(err).splitlines() or [""])[0]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _is_user_frame(filename: str) -> bool:
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    path = Path(filename)
    if not path.is_file() or not is_project_file(path):
        return False
    resolved = path.resolve()
    return not any(resolved.is_relative_to(own) for own in _OWN)


def user_frames(err: BaseException) -> str:
    """The traceback of `err` through the user's own files only, formatted as Python does."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if _is_user_frame(f.filename)]
    return "".join(traceback.format_list(frames)).rstrip("\n")


def call_user(fn: Callable[..., Any], setting: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)`; if the user's code raises: UserCodeError naming the setting,
    with the user's own frames (not 3 tracebacks through Prefect's and Keras' internals)."""
    try:
        return fn(*args, **kwargs)
    except InputError:
        raise
    except Exception as err:
        raise UserCodeError(
            f"{setting}: {name} raised {_one_line(err)}", user_frames(err)
        ) from None
