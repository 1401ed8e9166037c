"""Human-readable views of a run: the Prefect run card (markdown) and the terminal summary."""

from __future__ import annotations

from pathlib import Path

from seedtrail.manifest import Manifest
from seedtrail.registry import STAGES
from seedtrail.tables import markdown_table


def short(fp: str | None, n: int = 12) -> str:
    return "-" if not fp else fp if fp == "skipped" else fp[:n]


def run_card(manifest: Manifest) -> str:
    """Markdown run card: settings summary, seeds, fingerprints, metrics."""
    s, m = manifest.settings, manifest.metrics
    lines = [
        f"# seedtrail run `{manifest.run_id}`",
        "",
        f"**status** {manifest.status} · **root seed** {s.seed} · **data** {s.data.kind}"
        f" · **epochs** {s.training.epochs} · **batch** {s.training.batch_size}"
        f" · **threads** {s.determinism.intra_op_threads}/{s.determinism.inter_op_threads}"
        f" · **op determinism** {s.determinism.op_determinism}",
        "",
    ]
    if m.test_accuracy is not None and m.test_loss is not None:
        lines += [
            f"**test accuracy** {m.test_accuracy:.4f} · **test loss** {m.test_loss:.4f}"
            f" · {m.test_samples} test samples",
            "",
        ]
    pinned = set(manifest.seeds.pinned)
    rows = [
        [
            stage,
            f"{st.seed}{' (pinned)' if stage in pinned else ''}",
            f"`{short(st.fingerprint, 16)}`",
            f"{st.duration_s:.2f}",
            st.cache.get("status", "hit" if st.cached else "-"),
        ]
        for stage in STAGES
        if (st := manifest.stage(stage)) is not None
    ]
    lines += [markdown_table(["stage", "seed", "fingerprint", "seconds", "cache"], rows)]
    lines += ["", f"Run directory: `{manifest.run_dir}`"]
    return "\n".join(lines)


def terminal_summary(manifest: Manifest) -> str:
    s, m, stages = manifest.settings, manifest.metrics, manifest.stages
    run_dir = Path(manifest.run_dir)
    files = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("."))
    took = sum(st.duration_s for st in stages.values())
    return "\n".join(
        [
            "",
            f"run {manifest.status}: seed {s.seed} · {s.data.kind} · "
            f"{s.training.epochs} epochs · stages {took:.1f} s",
            f"  test accuracy  {m.test_accuracy:.4f}   test loss  {m.test_loss:.4f}"
            f"   ({m.test_samples} test samples)",
            f"  fingerprint    {short(stages['train'].fingerprint, 16)} (final weights)"
            f"   predictions {short(stages['evaluate'].fingerprint, 16)}",
            f"  run directory  {run_dir}",
            f"                 {'  '.join(files)}",
        ]
    )
