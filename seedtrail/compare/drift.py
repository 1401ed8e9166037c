"""Where training first diverges and by how much: batch, layer, weight drift, tolerance.

From the train stage's records (seedtrail/runtime/batch_records.py): each batch's own
loss per epoch, and each weight variable's fingerprint per epoch. The first batch whose
loss differs is the first forward pass that computed other bytes; the first variable (in
model order) whose fingerprint differs at the end of that epoch names the layer. The drift
at the end needs the weights themselves: `weight_drift` loads both runs' model.keras.

`parse_tolerance` reads `--tolerance accuracy=0.01,loss=0.02`; `seed_noise_note` puts a
metric difference in units of a sweep's seed-to-seed standard deviation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seedtrail.core.errors import InputError
from seedtrail.run.manifest import Manifest

#: Short names a tolerance may use, and the metric each one means (compare's metric keys).
METRIC_ALIASES = {
    "accuracy": "test_accuracy",
    "loss": "test_loss",
    "val_accuracy": "final_val_accuracy",
    "val_loss": "final_val_loss",
}
#: Every metric key a tolerance may name in full.
TOLERABLE = frozenset(
    {
        *METRIC_ALIASES.values(),
        "test_macro_f1",
        "final_accuracy",
        "final_loss",
    }
)
#: Within this many seed-to-seed standard deviations a difference is "within seed noise".
NOISE_SIGMAS = 2.0


def loss_str(value: float | None) -> str:
    """A recorded loss as the shortest decimal that gives back its float32 bits."""
    return "(none)" if value is None else str(np.float32(value))


def _same(x: float, y: float) -> bool:
    return float(x).hex() == float(y).hex()  # bits, not ==: NaN equals NaN, -0.0 is not 0.0


@dataclass(frozen=True)
class BatchDivergence:
    """The first batch (1-based) whose own loss differs; loss None: the batch is missing."""

    epoch: int
    batch: int
    batches: int
    loss_a: float | None
    loss_b: float | None

    def describe(self) -> str:
        return (
            f"epoch {self.epoch}, batch {self.batch} of {self.batches}: "
            f"loss {loss_str(self.loss_a)} vs {loss_str(self.loss_b)}"
        )

    @property
    def where(self) -> str:
        return f"epoch {self.epoch}, batch {self.batch}"


def first_divergent_batch(a: list[list[float]], b: list[list[float]]) -> BatchDivergence | None:
    """The first (epoch, batch) whose loss differs in the epochs both runs recorded."""
    for e, (ea, eb) in enumerate(zip(a, b, strict=False)):
        for i, (x, y) in enumerate(zip(ea, eb, strict=False)):
            if not _same(x, y):
                return BatchDivergence(e + 1, i + 1, len(ea), x, y)
        if len(ea) != len(eb):  # other batch counts: the first batch one run lacks
            n = min(len(ea), len(eb))
            xa, xb = (ea[n] if n < len(ea) else None), (eb[n] if n < len(eb) else None)
            return BatchDivergence(e + 1, n + 1, max(len(ea), len(eb)), xa, xb)
    return None


@dataclass(frozen=True)
class VariableDivergence:
    """At the end of `epoch`: the first differing weight variable, and how many differ."""

    epoch: int
    path: str
    differing: int
    total: int

    def describe(self) -> str:
        return (
            f"first weights that differ at the end of epoch {self.epoch}: {self.path} "
            f"({self.differing} of {self.total} weight variables differ)"
        )


def first_divergent_variable(
    a: list[dict[str, str]], b: list[dict[str, str]], epoch: int
) -> VariableDivergence | None:
    """The first variable in A's model order whose fingerprint differs after `epoch` (1-based)."""
    if not (0 < epoch <= min(len(a), len(b))):
        return None
    fa, fb = a[epoch - 1], b[epoch - 1]
    paths = list(fa) + [p for p in fb if p not in fa]
    differing = [p for p in paths if fa.get(p) != fb.get(p)]
    if not differing:
        return None
    return VariableDivergence(epoch, differing[0], len(differing), len(paths))


@dataclass(frozen=True)
class TrainDivergence:
    """What the records say about where training diverged (all None: nothing recorded)."""

    batch: BatchDivergence | None = None
    variable: VariableDivergence | None = None
    notes: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        out = [self.batch.describe()] if self.batch else []
        if self.variable:
            out.append(self.variable.describe())
        return out + list(self.notes)


def locate(a: Manifest, b: Manifest, labels: tuple[str, str]) -> TrainDivergence:
    """The first divergent batch and variable, from both runs' train records."""
    la, lb = a.batch_losses(), b.batch_losses()
    va, vb = a.variable_fingerprints(), b.variable_fingerprints()
    missing = [label for label, m in zip(labels, (a, b), strict=True) if m.batch_losses() is None]
    if missing:
        who = " and ".join(missing)
        return TrainDivergence(
            notes=(
                f"{who} {'has' if len(missing) == 1 else 'have'} no per-batch records "
                "(recorded before seedtrail kept them, or under JAX): the divergence is "
                "located to the epoch only",
            )
        )
    assert la is not None and lb is not None
    batch = first_divergent_batch(la, lb)
    epoch_fps = a.epoch_fingerprints(), b.epoch_fingerprints()
    notes: list[str] = []
    if batch is None:
        # Every loss matched: the difference is in an update after the last forward pass
        # compared (an epoch's last batch), or only in the epochs one run has.
        epoch = next(
            (i + 1 for i, (x, y) in enumerate(zip(*epoch_fps, strict=False)) if x != y), None
        )
        if epoch is not None:
            n = len(la[epoch - 1])
            notes.append(
                f"every batch's loss matches; the weights differ after epoch {epoch}'s last "
                f"update (batch {n} of {n})"
            )
    else:
        epoch = batch.epoch
    variable = None
    if epoch is not None and va is not None and vb is not None:
        variable = first_divergent_variable(va, vb, epoch)
    return TrainDivergence(batch, variable, tuple(notes))


@dataclass(frozen=True)
class VariableDrift:
    path: str
    max_abs: float
    rel_l2: float  # ||B - A|| / ||A||; inf when A is all zeros

    def describe(self) -> str:
        return f"{self.path}: max |Δ| {self.max_abs:.3g}, relative L2 {self.rel_l2:.3g}"


def _weights(model_path: Path) -> dict[str, np.ndarray]:
    from seedtrail.runtime.keras_io import load_model

    model = load_model(model_path, any_backend=True)  # the weights only, nothing trained
    return {v.path: np.asarray(v.numpy()) for v in model.weights}


def weight_drift(model_a: Path, model_b: Path) -> list[VariableDrift]:
    """Each weight variable whose bytes differ between two saved models, in A's model order."""
    wa, wb = _weights(model_a), _weights(model_b)
    out = []
    for path, x in wa.items():
        y = wb.get(path)
        if y is None or x.shape != y.shape:
            out.append(VariableDrift(path, math.nan, math.nan))
            continue
        if x.dtype == y.dtype and x.tobytes() == y.tobytes():
            continue
        d = y.astype(np.float64) - x.astype(np.float64)
        norm = float(np.linalg.norm(x.astype(np.float64)))
        diff = float(np.linalg.norm(d))
        out.append(VariableDrift(path, float(np.max(np.abs(d))), diff / norm if norm else math.inf))
    return out


def parse_tolerance(text: str, flag: str = "--tolerance") -> dict[str, float]:
    """`accuracy=0.01,loss=0.02` -> {"test_accuracy": 0.01, "test_loss": 0.02}; InputError if bad."""
    out: dict[str, float] = {}
    names = sorted(METRIC_ALIASES) + sorted(TOLERABLE)
    for part in text.split(","):
        name, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not name or not value:
            raise InputError(
                f"{flag} {text!r}: expected METRIC=NUMBER[,METRIC=NUMBER...], "
                "e.g. accuracy=0.01,loss=0.02"
            )
        key = METRIC_ALIASES.get(name, name)
        if key not in TOLERABLE:
            raise InputError(f"{flag}: unknown metric {name!r} (known: {', '.join(names)})")
        try:
            bound = float(value)
        except ValueError:
            bound = math.nan
        if not math.isfinite(bound) or bound < 0:
            raise InputError(f"{flag}: {name}={value!r} is not a number >= 0")
        if key in out:
            raise InputError(f"{flag}: {name} is given twice")
        out[key] = bound
    return out


def seed_noise_note(delta: float, std: float | None) -> str:
    """`= 0.2 σ of seed variance: within seed noise` (empty: no std to compare with)."""
    if std is None or not math.isfinite(std):
        return ""
    if std == 0:
        return "; the sweep's runs all gave this value (σ = 0)" if delta else ""
    z = abs(delta) / std
    verdict = "within seed noise" if z <= NOISE_SIGMAS else "beyond seed noise"
    return f" = {z:.2g} σ of seed variance: {verdict}"
