"""Field checks the settings models share: plain functions, no models (settings/model.py).

Each returns the value or raises ValueError with the line the user sees.
"""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BeforeValidator, ValidationInfo

#: `package.module:function`, importable from the working directory (the repository root).
CODE_REF_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"


def _not_empty_path(value: Any) -> Any:
    """'' would become Path('.'): the current directory, silently."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty")
    return value


# In the annotation, not a model validator: the CLI layer copies fields, not validators.
NonEmptyPath = Annotated[Path, BeforeValidator(_not_empty_path)]


def code_ref(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(CODE_REF_PATTERN, value):
        raise ValueError("must be package.module:function, e.g. examples.model:build")
    return value


def _is_number_type(annotation: Any) -> bool:
    """int or float, also inside Optional, Annotated or a tuple/list of them (not bool)."""
    if annotation in (int, float):
        return True
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType, tuple, list, Annotated):
        return any(_is_number_type(a) for a in get_args(annotation) if a is not Ellipsis)
    return False


def refuse_bool_for_number(fields: dict[str, Any], value: Any, info: ValidationInfo) -> Any:
    """`epochs = true` in a TOML file (or JSON): pydantic's lax mode reads it as 1. A flag
    `--training.epochs true` is refused as not a number; a TOML or JSON value is too."""
    field = fields.get(info.field_name or "")
    if field is None or not _is_number_type(field.annotation):
        return value
    items = value if isinstance(value, list | tuple) else [value]
    if any(isinstance(v, bool) for v in items):
        raise ValueError("must be a number, not true/false")
    return value


FILE_SUFFIXES = (".npz", ".csv")  # what kind=file reads (tasks/data.py)


def infer_path_kind(path: Path) -> str:
    """data.kind for a data.path given without one: a folder is images, a .npz/.csv a file."""
    if path.is_dir():
        return "images"
    if path.suffix.lower() in FILE_SUFFIXES:
        return "file"
    raise ValueError(
        f"cannot tell data.kind from data.path {str(path)!r} (not a folder, not a .npz or "
        ".csv file): set data.kind to file or images"
    )


def shard_problem(shards: int, batch_size: int) -> str | None:
    """One line naming both settings when K shards cannot split every full batch equally."""
    if shards > batch_size:
        return (
            f"training.shards: {shards} exceeds training.batch_size {batch_size}: "
            "a batch cannot be split into more shards than it has samples"
        )
    if batch_size % shards:
        return (
            f"training.shards: {shards} does not divide training.batch_size {batch_size}: "
            "choose a divisor, so that every full batch splits into equal shards"
        )
    return None
