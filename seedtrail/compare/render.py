"""Compare two run manifests, part 3: the comparison as terminal text or markdown."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seedtrail.compare.drift import seed_noise_note
from seedtrail.core.pipeline_table import EPOCH_STAGE
from seedtrail.core.tables import markdown_table, text_table
from seedtrail.run.report import short
from seedtrail.runtime.hardware import explain as explain_hardware

if TYPE_CHECKING:
    from seedtrail.compare.explanation import Comparison


def stage_table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    head = ["stage", "seed", f"{c.a.label} fingerprint", f"{c.b.label} fingerprint"]
    rows = []
    for r in c.stages:
        seed = str(r.seed_a) if r.seed_a == r.seed_b else f"{r.seed_a} -> {r.seed_b}"
        match = {
            "match": "yes",
            "expected": "no (expected: not deterministic)",
            "differs": "NO",
            "missing": "NO (missing)",
        }[r.status]
        if r.stage == EPOCH_STAGE and r.status == "differs" and c.divergent_epoch:
            match = f"NO (from epoch {c.divergent_epoch})"
        fa = "(none)" if r.fp_a is None else short(r.fp_a, 16)
        fb = "(none)" if r.fp_b is None else short(r.fp_b, 16)
        rows.append([r.stage, seed, fa, fb, match])
    return [*head, "match"], rows


def sections(c: Comparison) -> list[tuple[str, list[str]]]:
    def fmt(v: Any) -> str:
        return "(absent)" if v is None else str(v)

    sections = []
    if c.settings:
        sections.append(
            (
                "settings that differ (output_dir ignored)",
                [f"{d.key}: {fmt(d.a)} -> {fmt(d.b)}" for d in c.settings],
            )
        )
    if c.seeds:
        sections.append(
            ("seeds that differ", [f"{d.key}: {fmt(d.a)} -> {fmt(d.b)}" for d in c.seeds])
        )
    if c.environment:
        sections.append(
            (
                "environment differences" + ("" if c.matches else " (likely causes)"),
                [
                    f"{d.key}: {fmt(d.a)} -> {fmt(d.b)}" + (f"  ({d.note})" if d.note else "")
                    for d in c.environment
                ],
            )
        )
    hardware = explain_hardware([(d.key, d.a, d.b) for d in c.environment])
    if hardware:
        sections.append(("what the hardware difference means", hardware))
    if c.user_inputs:
        sections.append(("your code and files that differ", list(c.user_inputs)))
    if c.code:
        sections.append(
            (
                "stage code versions that differ",
                [f"{d.key}: {fmt(d.a)} -> {fmt(d.b)}" for d in c.code],
            )
        )
    if c.train.lines():
        sections.append(("where training first diverges", c.train.lines()))
    if c.drift or c.drift_note:
        title = f"weight drift at the end ({c.b.label} vs {c.a.label}, differing variables)"
        sections.append((title, [d.describe() for d in c.drift] or [c.drift_note]))
    if c.metrics and not c.matches:
        noise = f" (σ: seed-to-seed std of sweep {c.seed_std_source})" if c.seed_std else ""
        sections.append(
            (
                f"metrics ({c.a.label} -> {c.b.label}){noise}",
                [
                    f"{m.key}: {side_by_side(m.a, m.b)} ({m.delta:+.6g})"
                    + seed_noise_note(m.delta, c.seed_std.get(m.key))
                    for m in c.metrics
                ],
            )
        )
    if c.tolerance and not c.matches:
        sections.append(
            (
                "tolerance (--tolerance)",
                [
                    f"{key}: |Δ| {'(missing)' if d is None else f'{d:.6g}'} "
                    f"{'<=' if ok else '>'} {bound:g}: {'within' if ok else 'OUTSIDE'}"
                    for key, d, bound, ok in c.tolerance_checks()
                ]
                + ([f"not applied: {why}"] if (why := c.tolerance_refused()) else []),
            )
        )
    return sections


def side_by_side(a: float, b: float) -> str:
    """`0.8125 -> 0.8333`, with enough digits that two different values never print equal."""
    digits = 6
    while f"{a:.{digits}g}" == f"{b:.{digits}g}" and a != b and digits < 17:
        digits += 1
    return f"{a:.{digits}g} -> {b:.{digits}g}"


def render(c: Comparison, markdown: bool = False) -> str:
    head, rows = stage_table(c)
    a, b = c.a, c.b
    verdict = (
        "REPRODUCES"
        if c.matches
        else "REPRODUCES within tolerance"
        if c.within_tolerance
        else "DIFFERS"
    )
    notes = c.incomplete_notes()
    recorded = c.settings or c.seeds or c.environment or c.code or c.user_inputs
    if not c.matches and not recorded:
        notes.append(
            "no difference in settings, seeds, environment or code was recorded: "
            "look for hardware or an input file that changed"
        )
    if markdown:
        lines = [
            f"# seedtrail {c.title}: {verdict}",
            "",
            f"**{a.label}** `{a.run_id}` ({a.status}) · **{b.label}** `{b.run_id}` ({b.status})",
            "",
            f"**{c.headline()}**",
            *(["", f"likely causes: {', '.join(c.causes)}"] if c.causes and not c.matches else []),
            "",
            markdown_table(
                head, [[f"`{x}`" if i in (2, 3) else x for i, x in enumerate(r)] for r in rows]
            ),
        ]
        for note in notes:
            lines += ["", f"> {note}"]
        for title, items in sections(c):
            lines += ["", f"**{title}**", "", *(f"- `{i}`" for i in items)]
        return "\n".join(lines)

    table = text_table(head, rows)
    lines = [
        f"{c.title}: {a.label} {a.run_id} ({a.status}) vs {b.label} {b.run_id} ({b.status})",
        "",
        *table,
        "",
        *notes,
        c.headline(),
        *([f"likely causes: {', '.join(c.causes)}"] if c.causes and not c.matches else []),
    ]
    for title, items in sections(c):
        lines += [f"{title}:", *(f"  {i}" for i in items)]
    lines.append(f"result: {verdict} (exit {c.exit_code})")
    return "\n".join(lines)
