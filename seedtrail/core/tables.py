"""Table rendering, in one place: markdown (artifacts, summaries) and aligned plain text (terminal)."""

from __future__ import annotations

from collections.abc import Sequence


def _cell(value: object) -> str:
    return str(value).replace("|", "/").replace("\n", " ")


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart; one string per line."""
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    return [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in (head, *rows)
    ]
