"""Compare two run manifests: which stage diverged first, and what differs that could explain it.

Pure functions on typed manifests (seedtrail/manifest.py; no TensorFlow, no Prefect), shared by
`flows.verify` (recorded run vs a fresh rerun) and `flows.compare` (two runs).

Rules:
- Stages are compared in pipeline order (`settings.seeds.STAGES`) by fingerprint.
  A stage recorded by one run only (an incomplete run) counts as a difference;
  a stage neither run recorded is left out.
- The environment stage's fingerprint describes the stack, not data: when it
  differs it is reported as a *cause*, and the first divergent stage is the
  first data stage (data .. evaluate) whose bytes differ. Only when every data
  stage matches is "environment" itself the first divergent stage.
- `output_dir` is where a run's files go, not what it computes: its difference
  is ignored (it is also left out of the settings fingerprint).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seedtrail.hardware import explain as explain_hardware
from seedtrail.manifest import Manifest, parse_manifest, read_manifest
from seedtrail.registry import STAGES
from seedtrail.report import short
from seedtrail.tables import markdown_table, text_table
from seedtrail.user_inputs import changes as user_input_changes

#: Settings that never change a run's bytes, so their differences are not reported as causes.
#: Inter-op threads decide how many independent ops run at once, never a byte (measured:
#: docs/parallelism.md); the environment still shows the count each run had.
IGNORED_SETTINGS = frozenset({"output_dir", "determinism.inter_op_threads"})

#: Environment keys left out of the environment fingerprint (tasks/environment.py, _VOLATILE*):
#: shown, but marked as not expected to change the bytes.
NOT_FINGERPRINTED = frozenset(
    {"platform", "cpu_count", "determinism.PYTHONHASHSEED", "determinism.inter_op_threads"}
)

COMPLETE = "complete"


def read_run(run_dir: Path | str) -> Manifest:
    """A run's validated manifest; bad input raises NotARun, an InputError (one line)."""
    return read_manifest(Path(run_dir))


def as_manifest(m: Manifest | dict[str, Any]) -> Manifest:
    """Accept a manifest's JSON object too (hand-made ones in tests, a flow's return value)."""
    return m if isinstance(m, Manifest) else parse_manifest(m, run_dir=str(m.get("run_dir", "")))


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of dotted keys; lists and scalars are leaves."""
    if not isinstance(obj, dict):
        return {prefix: obj}
    if not obj and prefix:
        return {prefix: {}}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


@dataclass(frozen=True)
class Difference:
    """One dotted key whose value differs between run A and run B (None: absent)."""

    key: str
    a: Any
    b: Any
    note: str = ""


def diff_flat(
    a: dict[str, Any], b: dict[str, Any], ignore: frozenset[str] = frozenset()
) -> list[Difference]:
    """Differences between two nested dicts, as dotted keys in A's order, then B's extra keys."""
    fa, fb = flatten(a), flatten(b)
    keys = list(fa) + [k for k in fb if k not in fa]
    return [
        Difference(k, fa.get(k), fb.get(k))
        for k in keys
        if k not in ignore and not k.startswith(tuple(f"{i}." for i in ignore))
        if fa.get(k) != fb.get(k)
    ]


def diff_settings(a: Manifest, b: Manifest) -> list[Difference]:
    return diff_flat(a.settings_json(), b.settings_json(), IGNORED_SETTINGS)


def diff_seeds(a: Manifest, b: Manifest) -> list[Difference]:
    """Root seed, every stage seed and the pinned stages, where they differ."""
    sa, sb = a.seeds, b.seeds
    out = []
    if sa.root != sb.root:
        out.append(Difference("root", sa.root, sb.root))
    for stage in _ordered(set(sa.stages) | set(sb.stages)):
        if sa.stages.get(stage) != sb.stages.get(stage):
            out.append(Difference(f"stages.{stage}", sa.stages.get(stage), sb.stages.get(stage)))
    if sorted(sa.pinned) != sorted(sb.pinned):
        out.append(Difference("pinned", sa.pinned, sb.pinned))
    return out


def diff_environment(a: Manifest, b: Manifest) -> list[Difference]:
    """Versions, threads, determinism flags, devices, CPU, Python, uv.lock hash, where they differ."""
    diffs = diff_flat(a.environment_facts(), b.environment_facts())
    return [
        Difference(d.key, d.a, d.b, "not fingerprinted: does not change the bytes")
        if d.key in NOT_FINGERPRINTED
        else d
        for d in diffs
    ]


def diff_code(a: Manifest, b: Manifest) -> list[Difference]:
    """Stage code versions (a hash of each stage's source, or its declared version)."""
    return diff_flat(a.stage_versions, b.stage_versions)


def _ordered(stages: set[str]) -> list[str]:
    known = [s for s in STAGES if s in stages]
    return known + sorted(stages - set(STAGES))


@dataclass(frozen=True)
class StageRow:
    stage: str
    seed_a: int | None
    seed_b: int | None
    fp_a: str | None  # None: the run has no record of this stage
    fp_b: str | None
    deterministic: bool = True  # False in either run: other bytes are expected

    @property
    def status(self) -> str:
        if self.fp_a is None or self.fp_b is None:
            return "missing"
        if self.fp_a == self.fp_b:
            return "match"
        return "differs" if self.deterministic else "expected"

    @property
    def agrees(self) -> bool:
        """Counts as reproduced: equal bytes, or a stage declared not deterministic."""
        return self.status in ("match", "expected")


@dataclass(frozen=True)
class MetricDelta:
    key: str
    a: float
    b: float

    @property
    def delta(self) -> float:
        return self.b - self.a


def metric_deltas(a: Manifest, b: Manifest) -> list[MetricDelta]:
    """Scalar test metrics, and the final train/validation metrics of the last epoch."""

    def scalars(m: Manifest) -> dict[str, float]:
        out = m.metrics.scalars()
        out.update({f"final_{k}": v for k, v in m.final_train_metrics().items()})
        return out

    ma, mb = scalars(a), scalars(b)
    return [MetricDelta(k, ma[k], mb[k]) for k in ma if k in mb]


def first_divergent_epoch(a: Manifest, b: Manifest) -> int | None:
    """1-based epoch after which the weights first differ (None: the epochs agree, or unknown)."""
    ea, eb = a.epoch_fingerprints(), b.epoch_fingerprints()
    if not ea or not eb:
        return None
    for i, (x, y) in enumerate(zip(ea, eb, strict=False)):
        if x != y:
            return i + 1
    return None if len(ea) == len(eb) else min(len(ea), len(eb)) + 1


@dataclass(frozen=True)
class RunRef:
    label: str  # "A", "recorded", ...
    run_id: str
    status: str
    path: str = ""
    epochs: int = 0

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE


@dataclass
class Comparison:
    """Everything `verify` and `compare` report; `render()` for the terminal or markdown."""

    a: RunRef
    b: RunRef
    stages: list[StageRow]
    settings: list[Difference] = field(default_factory=list)
    seeds: list[Difference] = field(default_factory=list)
    environment: list[Difference] = field(default_factory=list)
    code: list[Difference] = field(default_factory=list)
    # the user's code, image files or pipeline file, e.g. "model code changed (module x.y)"
    user_inputs: list[str] = field(default_factory=list)
    metrics: list[MetricDelta] = field(default_factory=list)
    divergent_epoch: int | None = None
    title: str = "compare"
    limited: bool = False  # stages were limited on purpose (verify --stop-after): "partial" is fine

    @property
    def stages_match(self) -> bool:
        # nothing compared proves nothing
        return bool(self.stages) and all(r.agrees for r in self.stages)

    @property
    def incomplete(self) -> list[RunRef]:
        """Runs that did not finish cannot prove a reproduction (README: exit 1).

        Only B may stop early on purpose: verify's rerun with --stop-after is "partial".
        """
        return [
            r
            for r in (self.a, self.b)
            if not r.complete and not (r is self.b and self.limited and r.status == "partial")
        ]

    @property
    def matches(self) -> bool:
        return self.stages_match and not self.incomplete

    @property
    def exit_code(self) -> int:
        return 0 if self.matches else 1

    @property
    def first_divergent_stage(self) -> str | None:
        """First data stage whose bytes differ; "environment" if only the stack differs."""
        for row in self.stages:
            if row.stage != "environment" and not row.agrees:
                return row.stage
        envs = [r for r in self.stages if r.stage == "environment" and not r.agrees]
        return "environment" if envs else None

    @property
    def causes(self) -> list[str]:
        """Differences that may explain a divergence, most likely first (fingerprinted ones)."""
        out = list(self.user_inputs)  # named by module or file: the most specific
        out += [f"settings {d.key}" for d in self.settings]
        out += [f"seed {d.key}" for d in self.seeds if not self.settings]
        out += [f"environment {d.key}" for d in self.environment if not d.note]
        if explain_hardware([(d.key, d.a, d.b) for d in self.environment]):
            out.insert(0, "hardware (see below)")
        out += [f"code version of stage {d.key}" for d in self.code]
        return out

    def incomplete_notes(self) -> list[str]:
        notes = []
        for ref in self.incomplete:
            recorded = [
                r.stage for r in self.stages if (r.fp_a if ref is self.a else r.fp_b) is not None
            ]
            last = recorded[-1] if recorded else "no stage"
            notes.append(
                f"{ref.label} is incomplete (status {ref.status!r}): recorded up to {last}"
            )
        return notes

    def headline(self) -> str:
        if self.matches:
            n, last = len(self.stages), self.stages[-1].stage
            expected = [r.stage for r in self.stages if r.status == "expected"]
            tail = (
                f" ({', '.join(expected)} not deterministic: differ as expected)"
                if expected
                else ""
            )
            if self.limited and last != STAGES[-1]:
                return (
                    f"every stage up to {last} matches ({n} of {n}); later stages not checked{tail}"
                )
            return f"every stage matches ({n} of {n}): the run reproduces{tail}"
        if self.stages_match:
            who = " and ".join(r.label for r in self.incomplete)
            n = len(self.stages)
            return (
                f"every recorded stage matches ({n} of {n}), but {who} "
                f"{'is' if len(self.incomplete) == 1 else 'are'} incomplete: "
                "not proven to reproduce"
            )
        stage = self.first_divergent_stage
        if stage is None:
            return "nothing to compare: neither run recorded a stage"
        if stage == "environment":
            return (
                "every data stage matches, but the environment differs "
                "(the bytes agree here; they may not elsewhere)"
            )
        row = next(r for r in self.stages if r.stage == stage)
        if row.status == "missing":
            who = self.a.label if row.fp_a is None else self.b.label
            return f"first divergent stage: {stage} ({who} has no record of it)"
        where = stage
        if stage == "train" and self.divergent_epoch is not None:
            where = f"train, at epoch {self.divergent_epoch} of {max(self.a.epochs, self.b.epochs)}"
        later = [r.stage for r in self.stages if STAGES.index(r.stage) > STAGES.index(stage)]
        tail = "; later stages inherit the difference" if later else ""
        return f"first divergent stage: {where}{tail}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (the flows' return value)."""
        return {
            "matches": self.matches,
            "exit_code": self.exit_code,
            "headline": self.headline(),
            "first_divergent_stage": self.first_divergent_stage,
            "first_divergent_epoch": self.divergent_epoch,
            "runs": {
                r.label: {"run_id": r.run_id, "status": r.status, "path": r.path}
                for r in (self.a, self.b)
            },
            "stages": [
                {
                    "stage": r.stage,
                    "seed": [r.seed_a, r.seed_b],
                    "fingerprint": [r.fp_a, r.fp_b],
                    "status": r.status,
                }
                for r in self.stages
            ],
            "settings": [[d.key, d.a, d.b] for d in self.settings],
            "seeds": [[d.key, d.a, d.b] for d in self.seeds],
            "environment": [[d.key, d.a, d.b, d.note] for d in self.environment],
            "code": [[d.key, d.a, d.b] for d in self.code],
            "user_inputs": list(self.user_inputs),
            "metrics": [[m.key, m.a, m.b, m.delta] for m in self.metrics],
            "likely_causes": self.causes,
        }

    # --- rendering -----------------------------------------------------------------------------

    def _table(self) -> tuple[list[str], list[list[str]]]:
        head = ["stage", "seed", f"{self.a.label} fingerprint", f"{self.b.label} fingerprint"]
        rows = []
        for r in self.stages:
            seed = str(r.seed_a) if r.seed_a == r.seed_b else f"{r.seed_a} -> {r.seed_b}"
            match = {
                "match": "yes",
                "expected": "no (expected: not deterministic)",
                "differs": "NO",
                "missing": "NO (missing)",
            }[r.status]
            if r.stage == "train" and r.status == "differs" and self.divergent_epoch:
                match = f"NO (from epoch {self.divergent_epoch})"
            fa = "(none)" if r.fp_a is None else short(r.fp_a, 16)
            fb = "(none)" if r.fp_b is None else short(r.fp_b, 16)
            rows.append([r.stage, seed, fa, fb, match])
        return [*head, "match"], rows

    def _sections(self) -> list[tuple[str, list[str]]]:
        def fmt(v: Any) -> str:
            return "(absent)" if v is None else str(v)

        sections = []
        if self.settings:
            sections.append(
                (
                    "settings that differ (output_dir ignored)",
                    [f"{d.key}: {fmt(d.a)} -> {fmt(d.b)}" for d in self.settings],
                )
            )
        if self.seeds:
            sections.append(
                ("seeds that differ", [f"{d.key}: {fmt(d.a)} -> {fmt(d.b)}" for d in self.seeds])
            )
        if self.environment:
            sections.append(
                (
                    "environment differences" + ("" if self.matches else " (likely causes)"),
                    [
                        f"{d.key}: {fmt(d.a)} -> {fmt(d.b)}" + (f"  ({d.note})" if d.note else "")
                        for d in self.environment
                    ],
                )
            )
        hardware = explain_hardware([(d.key, d.a, d.b) for d in self.environment])
        if hardware:
            sections.append(("what the hardware difference means", hardware))
        if self.user_inputs:
            sections.append(("your code and files that differ", list(self.user_inputs)))
        if self.code:
            sections.append(
                (
                    "stage code versions that differ",
                    [f"{d.key}: {fmt(d.a)} -> {fmt(d.b)}" for d in self.code],
                )
            )
        if self.metrics and not self.matches:
            sections.append(
                (
                    f"metrics ({self.a.label} -> {self.b.label})",
                    [f"{m.key}: {m.a:.6g} -> {m.b:.6g} ({m.delta:+.6g})" for m in self.metrics],
                )
            )
        return sections

    def render(self, markdown: bool = False) -> str:
        head, rows = self._table()
        a, b = self.a, self.b
        verdict = "REPRODUCES" if self.matches else "DIFFERS"
        notes = self.incomplete_notes()
        recorded = self.settings or self.seeds or self.environment or self.code or self.user_inputs
        if not self.matches and not recorded:
            notes.append(
                "no difference in settings, seeds, environment or code was recorded: "
                "look for hardware or an input file that changed"
            )
        if markdown:
            lines = [
                f"# seedtrail {self.title}: {verdict}",
                "",
                f"**{a.label}** `{a.run_id}` ({a.status}) · **{b.label}** `{b.run_id}` ({b.status})",
                "",
                f"**{self.headline()}**",
                *(
                    ["", f"likely causes: {', '.join(self.causes)}"]
                    if self.causes and not self.matches
                    else []
                ),
                "",
                markdown_table(
                    head, [[f"`{c}`" if i in (2, 3) else c for i, c in enumerate(r)] for r in rows]
                ),
            ]
            for note in notes:
                lines += ["", f"> {note}"]
            for title, items in self._sections():
                lines += ["", f"**{title}**", "", *(f"- `{i}`" for i in items)]
            return "\n".join(lines)

        table = text_table(head, rows)
        lines = [
            f"{self.title}: {a.label} {a.run_id} ({a.status}) vs {b.label} {b.run_id} ({b.status})",
            "",
            *table,
            "",
            *notes,
            self.headline(),
            *(
                [f"likely causes: {', '.join(self.causes)}"]
                if self.causes and not self.matches
                else []
            ),
        ]
        for title, items in self._sections():
            lines += [f"{title}:", *(f"  {i}" for i in items)]
        lines.append(f"result: {verdict} (exit {self.exit_code})")
        return "\n".join(lines)


def compare_manifests(
    a: Manifest | dict[str, Any],
    b: Manifest | dict[str, Any],
    labels: tuple[str, str] = ("A", "B"),
    stages: tuple[str, ...] | None = None,
    title: str = "compare",
) -> Comparison:
    """Compare manifest B against manifest A; `stages` limits which stages are compared."""
    a, b = as_manifest(a), as_manifest(b)
    wanted = set(stages) if stages is not None else set(a.stages) | set(b.stages)
    rows = []
    for stage in _ordered(wanted & (set(a.stages) | set(b.stages))):
        ra, rb = a.stage(stage), b.stage(stage)
        rows.append(
            StageRow(
                stage,
                ra.seed if ra else None,
                rb.seed if rb else None,
                ra.fingerprint if ra else None,
                rb.fingerprint if rb else None,
                deterministic=all(r.deterministic for r in (ra, rb) if r is not None),
            )
        )

    def ref(m: Manifest, label: str) -> RunRef:
        return RunRef(label, m.run_id, m.status, m.run_dir, len(m.epoch_fingerprints()))

    return Comparison(
        a=ref(a, labels[0]),
        b=ref(b, labels[1]),
        stages=rows,
        settings=diff_settings(a, b),
        seeds=diff_seeds(a, b),
        environment=diff_environment(a, b),
        code=diff_code(a, b),
        user_inputs=user_input_changes(a.user_inputs, b.user_inputs),
        metrics=metric_deltas(a, b),
        divergent_epoch=first_divergent_epoch(a, b) if "train" in wanted else None,
        title=title,
        limited=stages is not None and set(STAGES) - set(stages) != set(),
    )
