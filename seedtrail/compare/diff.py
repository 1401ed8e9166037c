"""Compare two run manifests, part 1: what differs (stages, settings, seeds, environment, code).

The verdict and its causes are in explanation.py, the text and markdown in render.py.
Pure functions on typed manifests (seedtrail/run/manifest.py; no TensorFlow, no Prefect), shared by
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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seedtrail.core.pipeline_table import STAGES
from seedtrail.run.manifest import Manifest, parse_manifest, read_manifest

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
    for stage in in_pipeline_order(set(sa.stages) | set(sb.stages)):
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


def in_pipeline_order(stages: set[str]) -> list[str]:
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
