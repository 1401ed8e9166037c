"""Human-readable views of a run: the Prefect run card (markdown) and the terminal summary."""

from __future__ import annotations

import base64
import statistics
from pathlib import Path

from seedtrail.core.pipeline_table import EPOCH_STAGE, STAGES
from seedtrail.core.tables import markdown_table
from seedtrail.run.manifest import Manifest, Metrics


def short(fp: str | None, n: int = 12) -> str:
    return "-" if not fp else fp if fp == "skipped" else fp[:n]


# A card larger than this would make the artifact page slow; the plots are drawn small
# (seedtrail/core/plots.py), so in practice each is 20-60 KB.
MAX_IMAGE_BYTES = 100_000
# Pictures on the run card, in order: (manifest artifact key, caption).
CARD_IMAGES = (("training_curves", "training curves"), ("augment_preview", "augmentation preview"))


def png_markdown(path: Path, caption: str, max_bytes: int = MAX_IMAGE_BYTES) -> str:
    """An inline `data:image/png;base64` image (Prefect's UI renders it), or a line saying why not."""
    try:
        data = path.read_bytes()
    except OSError:
        return f"*{caption}: no picture ({path.name} missing)*"
    if len(data) > max_bytes:
        return f"*{caption}: {path.name} is {len(data) // 1000} KB, too large for the card*"
    return f"![{caption}](data:image/png;base64,{base64.b64encode(data).decode('ascii')})"


def macro_f1(m: Metrics) -> float | None:
    return statistics.fmean(c.f1 for c in m.per_class.values()) if m.per_class else None


def headline(manifest: Manifest) -> str:
    """Seed and headline metrics in one line: `seed 0 · acc 0.8292 · loss 0.3750 · macro-F1 0.8210`."""
    m, parts = manifest.metrics, [f"seed {manifest.settings.seed}"]
    f1 = macro_f1(m)
    if m.test_accuracy is not None:
        parts.append(f"acc {m.test_accuracy:.4f}")
    if m.test_loss is not None:
        parts.append(f"loss {m.test_loss:.4f}")
    if f1 is not None:
        parts.append(f"macro-F1 {f1:.4f}")
    if len(parts) == 1:
        parts.append(manifest.status)
    return " · ".join(parts)


def card_description(manifest: Manifest) -> str:
    """The run card's description: what the artifact history shows per run."""
    return f"{headline(manifest)} · {manifest.run_id}"


def result_line(manifest: Manifest) -> str:
    """The flow run's last log line: metrics, final-weights fingerprint, run directory."""
    train = manifest.stage(EPOCH_STAGE)
    weights = short(train.fingerprint, 16) if train else "-"
    return (
        f"result: {headline(manifest)} · final weights {weights} · run directory {manifest.run_dir}"
    )


def _inter_op(manifest: Manifest) -> object:
    """The inter-op threads the run had (the environment's record), else its setting."""
    recorded = manifest.environment_facts().get("determinism", {})
    return recorded.get("inter_op_threads") or manifest.settings.determinism.inter_op_threads


def run_card(manifest: Manifest) -> str:
    """Markdown run card: settings summary, seeds, fingerprints, metrics."""
    s, m = manifest.settings, manifest.metrics
    lines = [
        f"# seedtrail run `{manifest.run_id}`",
        "",
        f"**status** {manifest.status} · **root seed** {s.seed} · **data** {s.data.kind}"
        f" · **epochs** {s.training.epochs} · **batch** {s.training.batch_size}"
        f" · **threads** {s.determinism.intra_op_threads} intra-op x {_inter_op(manifest)} inter-op"
        f" · **shards** {s.training.shards}"
        f" · **op determinism** {s.determinism.op_determinism}",
        "",
    ]
    if m.test_accuracy is not None and m.test_loss is not None:
        f1 = macro_f1(m)
        lines += [
            f"**test accuracy** {m.test_accuracy:.4f} · **test loss** {m.test_loss:.4f}"
            + (f" · **macro-F1** {f1:.4f}" if f1 is not None else "")
            + f" · {m.test_samples} test samples",
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
    run_dir = Path(manifest.run_dir)
    for key, caption in CARD_IMAGES:
        if key in manifest.artifacts:
            lines += [
                "",
                f"### {caption.capitalize()}",
                "",
                png_markdown(run_dir / manifest.artifacts[key], caption),
            ]
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
