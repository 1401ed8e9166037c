"""Compare two run manifests, part 2: the verdict, the first divergent stage, the likely causes.

`compare_manifests` assembles the differences (diff.py) into a `Comparison`, which decides
whether B reproduces A and why not; `Comparison.render` (render.py) writes it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seedtrail.compare import render
from seedtrail.compare.diff import (
    Difference,
    MetricDelta,
    RunRef,
    StageRow,
    as_manifest,
    diff_code,
    diff_environment,
    diff_seeds,
    diff_settings,
    first_divergent_epoch,
    in_pipeline_order,
    metric_deltas,
)
from seedtrail.compare.drift import TrainDivergence, VariableDrift, locate, weight_drift
from seedtrail.core.pipeline_table import ENVIRONMENT_STAGE, EPOCH_STAGE, STAGES
from seedtrail.inputs.user_inputs import changes as user_input_changes
from seedtrail.run.manifest import Manifest
from seedtrail.runtime.hardware import explain as explain_hardware

MODEL_FILE = "model.keras"  # the train stage's final model, in the run directory


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
    # where training diverged (drift.py): batch, layer; the weight drift at the end (filled
    # in by the flows, which load both model.keras files)
    train: TrainDivergence = field(default_factory=TrainDivergence)
    drift: list[VariableDrift] = field(default_factory=list)
    drift_note: str = ""
    # --tolerance: metric key -> largest |B - A| that still counts as reproducing
    tolerance: dict[str, float] = field(default_factory=dict)
    # --against-sweep: metric key -> the sweep's seed-to-seed std, and which sweep
    seed_std: dict[str, float] = field(default_factory=dict)
    seed_std_source: str = ""

    @property
    def stages_match(self) -> bool:
        # nothing compared proves nothing
        return bool(self.stages) and all(r.agrees for r in self.stages)

    @property
    def incomplete(self) -> list[RunRef]:
        """Runs that did not finish cannot prove a reproduction (docs/portability.md: exit 1).

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
        return 0 if self.matches or self.within_tolerance else 1

    def tolerance_checks(self) -> list[tuple[str, float | None, float, bool]]:
        """(metric, |B - A| or None if a run lacks it, tolerance, within) per tolerated metric."""
        deltas = {m.key: abs(m.delta) for m in self.metrics}
        out = []
        for key, bound in self.tolerance.items():
            d = deltas.get(key)
            out.append((key, d, bound, d is not None and d <= bound))
        return out

    def tolerance_refused(self) -> str:
        """Why a tolerance cannot apply here (empty: it can)."""
        if self.incomplete:
            return "a run is incomplete"
        differ = [
            what
            for what, found in (
                ("settings", self.settings),
                ("seeds", self.seeds),
                ("your code or files", self.user_inputs),
            )
            if found
        ]
        if differ:
            return (
                f"the runs' {' and '.join(differ)} differ: a tolerance accepts the same run "
                "on other hardware or software, not another configuration"
            )
        return ""

    @property
    def within_tolerance(self) -> bool:
        """Bytes differ, but the same run (settings, seeds, inputs) lands within --tolerance."""
        if self.matches or not self.tolerance or self.tolerance_refused():
            return False  # e.g. another configuration is not a reproduction at any tolerance
        return all(ok for *_, ok in self.tolerance_checks())

    def bytes_differ_from(self) -> str:
        """`epoch 1, batch 1`, or `stage model` when bytes differ before training."""
        stage = self.first_divergent_stage
        if stage == EPOCH_STAGE and self.train.batch is not None:
            return self.train.batch.where
        if stage == EPOCH_STAGE and self.divergent_epoch is not None:
            return f"epoch {self.divergent_epoch}"
        return f"stage {stage}"

    @property
    def first_divergent_stage(self) -> str | None:
        """First data stage whose bytes differ; "environment" if only the stack differs."""
        for row in self.stages:
            if row.stage != ENVIRONMENT_STAGE and not row.agrees:
                return row.stage
        envs = [r for r in self.stages if r.stage == ENVIRONMENT_STAGE and not r.agrees]
        return ENVIRONMENT_STAGE if envs else None

    @property
    def causes(self) -> list[str]:
        """Differences that may explain a divergence, most likely first (fingerprinted ones)."""
        out = list(self.user_inputs)  # named by module or file: the most specific
        out += [f"settings {d.key}" for d in self.settings]
        out += [f"seed {d.key}" for d in self.seeds if not self.settings]
        out += [f"environment {d.key}" for d in self.environment if not d.note]
        if explain_hardware([(d.key, d.a, d.b) for d in self.environment]):
            out.insert(0, "hardware (see below)")
        backend = next((d for d in self.environment if d.key == "keras_backend.name"), None)
        # Runs recorded before the setting existed ran TensorFlow.
        names = [(v or "tensorflow") for v in (backend.a, backend.b)] if backend else []
        if names and names[0] != names[1]:  # another library's arithmetic: say it first
            out.insert(0, f"Keras backend differs ({names[0]} → {names[1]})")
        out += [f"code version of stage {d.key}" for d in self.code]
        return out

    def measure_drift(self) -> None:
        """The drift of each differing weight variable, from both final models (loads Keras)."""
        if not any(r.stage == EPOCH_STAGE and r.status == "differs" for r in self.stages):
            return
        models = [Path(r.path) / MODEL_FILE for r in (self.a, self.b)]
        lacking = [
            r.label for r, m in zip((self.a, self.b), models, strict=True) if not m.is_file()
        ]
        if lacking:
            self.drift_note = f"{' and '.join(lacking)}: no {MODEL_FILE}, no drift figures"
            return
        self.drift = weight_drift(*models)

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

    def verdict(self) -> str:
        """`REPRODUCES (7/7)` or `DIFFERS (5/7)`: the verdict and how many stages agree."""
        agree = sum(r.agrees for r in self.stages)
        word = (
            "REPRODUCES"
            if self.matches
            else "REPRODUCES within tolerance"
            if self.within_tolerance
            else "DIFFERS"
        )
        return f"{word} ({agree}/{len(self.stages)})"

    def headline(self) -> str:
        if self.within_tolerance:
            return f"REPRODUCES within tolerance (bytes differ from {self.bytes_differ_from()})"
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
        if stage == ENVIRONMENT_STAGE:
            return (
                "every data stage matches, but the environment differs "
                "(the bytes agree here; they may not elsewhere)"
            )
        row = next(r for r in self.stages if r.stage == stage)
        if row.status == "missing":
            who = self.a.label if row.fp_a is None else self.b.label
            return f"first divergent stage: {stage} ({who} has no record of it)"
        where = stage
        if stage == EPOCH_STAGE and self.divergent_epoch is not None:
            where = (
                f"{stage}, at epoch {self.divergent_epoch} of {max(self.a.epochs, self.b.epochs)}"
            )
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
            "first_divergent_batch": None
            if self.train.batch is None
            else {
                "epoch": self.train.batch.epoch,
                "batch": self.train.batch.batch,
                "batches": self.train.batch.batches,
                "loss": [self.train.batch.loss_a, self.train.batch.loss_b],
            },
            "first_divergent_variable": None
            if self.train.variable is None
            else self.train.variable.path,
            "train_divergence": self.train.lines(),
            "drift": [[d.path, d.max_abs, d.rel_l2] for d in self.drift],
            "within_tolerance": self.within_tolerance,
            "tolerance": [list(t) for t in self.tolerance_checks()],
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

    def render(self, markdown: bool = False) -> str:
        """The report, for the terminal or (markdown=True) a Prefect artifact."""
        return render.render(self, markdown)


def compare_manifests(
    a: Manifest | dict[str, Any],
    b: Manifest | dict[str, Any],
    labels: tuple[str, str] = ("A", "B"),
    stages: tuple[str, ...] | None = None,
    title: str = "compare",
    tolerance: dict[str, float] | None = None,
    seed_std: dict[str, float] | None = None,
    seed_std_source: str = "",
) -> Comparison:
    """Compare manifest B against manifest A; `stages` limits which stages are compared."""
    a, b = as_manifest(a), as_manifest(b)
    wanted = set(stages) if stages is not None else set(a.stages) | set(b.stages)
    rows = []
    for stage in in_pipeline_order(wanted & (set(a.stages) | set(b.stages))):
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

    train_differs = any(r.stage == EPOCH_STAGE and r.status == "differs" for r in rows)
    train = locate(a, b, labels) if train_differs else TrainDivergence()

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
        divergent_epoch=first_divergent_epoch(a, b) if EPOCH_STAGE in wanted else None,
        title=title,
        limited=stages is not None and set(STAGES) - set(stages) != set(),
        train=train,
        tolerance=dict(tolerance or {}),
        seed_std=dict(seed_std or {}),
        seed_std_source=seed_std_source,
    )
