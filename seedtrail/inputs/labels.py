"""Labels to classes: a missing label is refused (never a class), numbers sort as numbers.

Every path that reads labels (a CSV column, an .npz's `y`, a loader's `y`) goes through
here. "Missing" is what pandas reads as missing by default (an empty cell, NA, NaN,
None, null, ...: case as written, so a class called "none" stays a class), plus None
and NaN values in an array. Text labels that are all numbers become numbers, so 1, 2
and 10 are classes in that order, not "1", "10", "2".
"""

from __future__ import annotations

import contextlib

import numpy as np

from seedtrail.core.errors import InputError

#: pandas' default na_values (pandas.io.parsers), which a user's CSV tools also treat as missing.
MISSING = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
     "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null", "NaT"}
)  # fmt: skip
SHOWN = 5  # positions named in the message; the rest are counted


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return isinstance(value, str) and value.strip() in MISSING


def missing_positions(raw: np.ndarray) -> np.ndarray:
    """Indices of the missing labels in a one-dimensional array."""
    if raw.dtype.kind == "f":
        return np.flatnonzero(np.isnan(raw))
    if raw.dtype.kind in "USO":
        return np.flatnonzero([_is_missing(v) for v in raw.tolist()])
    return np.empty(0, dtype=np.int64)


PLURAL = {"index": "indices", "line": "lines"}


def positions_text(positions: np.ndarray | list[int], noun: str) -> str:
    """'line 3', 'lines 3, 5, 9', or the first SHOWN and a count: 'indices 0, 1, 2, 3, 4 (+7 more)'."""
    shown = [str(int(p)) for p in positions[:SHOWN]]
    more = len(positions) - len(shown)
    nouns = noun if len(positions) == 1 else PLURAL.get(noun, noun + "s")
    return f"{nouns} {', '.join(shown)}" + (f" (+{more} more)" if more else "")


def refuse_missing(
    raw: np.ndarray, where: str, what: str = "y", noun: str = "index", offset: int = 0
) -> None:
    """InputError naming the positions (+offset, e.g. a CSV's line numbers) of missing labels."""
    found = missing_positions(raw)
    if len(found):
        raise InputError(
            f"{where}: {what} has {len(found)} missing label{'s' if len(found) > 1 else ''} "
            f"(empty, NA, NaN or None) at {positions_text(found + offset, noun)}; "
            "a missing label is not a class: fill in or remove those samples"
        )


def as_numbers_if_numeric(raw: np.ndarray) -> np.ndarray:
    """Text labels that all parse as numbers, as numbers (1 and 1.0 are then one class);
    anything else unchanged (names, sorted alphabetically)."""
    if raw.dtype.kind not in "US":
        return raw
    for dtype in (np.int64, np.float64):
        with contextlib.suppress(ValueError, OverflowError):
            return raw.astype(dtype)
    return raw
