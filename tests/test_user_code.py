"""User code named `module:function`: resolution, one-line errors, and the source fingerprint."""

from __future__ import annotations

import ast
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from seedtrail.core.errors import InputError
from seedtrail.inputs import user_code

_ids = itertools.count()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A throwaway user project on sys.path: package `<pkg>` with a model and a helper module."""
    pkg = f"userproj{next(_ids)}"
    root = tmp_path / "proj"
    (root / pkg).mkdir(parents=True)
    (root / pkg / "__init__.py").write_text("")
    (root / pkg / "layers.py").write_text("def width():\n    return 8\n")
    (root / pkg / "model.py").write_text(
        "import json\nimport numpy as np\n"
        f"from {pkg} import layers\nfrom .layers import width\n\n"
        "def build(input_shape, n_classes, **options):\n    return width()\n\n"
        "NOT_CALLABLE = 3\n"
    )
    monkeypatch.syspath_prepend(str(root))
    yield pkg, root / pkg
    for name in [m for m in sys.modules if m.startswith(pkg)]:
        del sys.modules[name]


def test_parse_ref_needs_module_and_function():
    assert str(user_code.parse_ref("a.b:c", "model.builder")) == "a.b:c"
    for bad in ("a.b", "a.b:", ":c", "a b:c", "a.b:c-d"):
        with pytest.raises(
            InputError, match=r"^model\.builder: .* is not 'package\.module:function'"
        ):
            user_code.parse_ref(bad, "model.builder")


def test_fingerprint_covers_the_module_and_the_project_modules_it_imports(project):
    pkg, _ = project
    fp = user_code.fingerprint_code(f"{pkg}.model:build", "model.builder")
    # the package __init__ runs on import too; numpy and json are not the user's code
    assert list(fp.modules) == [pkg, f"{pkg}.layers", f"{pkg}.model"]
    assert len(fp.digest) == 64


def test_fingerprint_imports_nothing(project):
    pkg, _ = project
    user_code.fingerprint_code(f"{pkg}.model:build", "model.builder")
    assert not [m for m in sys.modules if m.startswith(pkg)]


def test_an_edit_of_an_imported_module_changes_the_fingerprint_and_names_it(project):
    pkg, path = project
    before = user_code.fingerprint_code(f"{pkg}.model:build", "model.builder")
    assert user_code.fingerprint_code(f"{pkg}.model:build", "model.builder") == before
    (path / "layers.py").write_text("def width():\n    return 16\n")
    after = user_code.fingerprint_code(f"{pkg}.model:build", "model.builder")
    assert after.digest != before.digest
    assert user_code.changed_modules(before.modules, after.modules) == [f"{pkg}.layers"]


def test_missing_module_missing_function_and_not_callable_are_one_line_each(project):
    pkg, _ = project
    cases = {
        "nosuchpkg.model:build": r"^model\.builder: no module named 'nosuchpkg\.model'",
        f"{pkg}.model:nope": rf"^model\.builder: module {pkg}\.model has no function 'nope'$",
        f"{pkg}.model:NOT_CALLABLE": r"^model\.builder: .*:NOT_CALLABLE is not callable",
    }
    for ref, pattern in cases.items():
        with pytest.raises(InputError, match=pattern) as err:
            user_code.fingerprint_code(ref, "model.builder")
        assert len(err.value.problems) == 1 and "\n" not in err.value.problems[0]
        with pytest.raises(InputError, match=pattern):
            user_code.resolve(ref, "model.builder")


def test_resolve_returns_the_callable(project):
    pkg, _ = project
    fn = user_code.resolve(f"{pkg}.model:build", "model.builder")
    assert fn((4,), 2) == 8


def test_a_module_that_fails_on_import_is_one_line(project):
    pkg, path = project
    (path / "broken.py").write_text("import does_not_exist_anywhere\ndef f(): pass\n")
    with pytest.raises(
        InputError, match=r"^data\.loader: importing .*broken failed: ModuleNotFound"
    ):
        user_code.resolve(f"{pkg}.broken:f", "data.loader")


def test_installed_and_stdlib_files_are_not_project_files():
    assert not user_code.is_project_file(Path(np.__file__))
    assert not user_code.is_project_file(Path(json.__file__))
    assert user_code.is_project_file(Path(__file__))


def _flaky_parse(failures: int, message: str = "AST constructor recursion depth mismatch (1, 2)"):
    """ast.parse that first fails `failures` times with a SystemError, as CPython 3.11's
    shared AST depth counter does when another thread builds an AST at the same time."""
    calls = []

    def parse(source: bytes, filename: str) -> ast.Module:
        calls.append(filename)
        if len(calls) <= failures:
            raise SystemError(message)
        return ast.parse(source, filename=filename)

    return parse, calls


def test_a_parse_that_loses_the_ast_thread_race_is_retried(tmp_path: Path) -> None:
    from seedtrail.inputs.user_code import _AST_TRIES, _parse

    src = tmp_path / "m.py"
    src.write_text("import os\nX = 1\n")
    parse, calls = _flaky_parse(_AST_TRIES - 1)
    tree = _parse(src, "model.builder", parse)
    assert isinstance(tree.body[0], ast.Import) and len(calls) == _AST_TRIES
    parse, calls = _flaky_parse(_AST_TRIES)  # never wins: the error is not hidden
    with pytest.raises(SystemError, match="recursion depth mismatch"):
        _parse(src, "model.builder", parse)
    parse, calls = _flaky_parse(1, "another SystemError")  # not the race: no retry
    with pytest.raises(SystemError, match="another"):
        _parse(src, "model.builder", parse)
    assert len(calls) == 1
