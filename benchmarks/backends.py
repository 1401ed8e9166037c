"""`python -m benchmarks.backends`: the train stage's time per Keras backend (issue 21).

Each run is a real `python -m flows.train --no-cache` in its own process and output folder,
with `--backend B` and otherwise the same settings; the time is the train stage's own
`duration_s` from the manifest (no imports, no Prefect start), divided by the epochs.
Backends alternate within each repeat, so a change of machine load hits them alike;
medians are reported. Two configurations:

- `default`: the default run (1,200 synthetic 24-px images, CNN 16-32 filters, 10 epochs);
- `larger CNN`: 48-px images, conv filters 32-64-128, dense 128, 3 epochs.

    python -m benchmarks.backends                  # both configurations, 2 repeats
    python -m benchmarks.backends --repeats 1      # one run each
    python -m benchmarks.backends --quick          # tiny: checks the harness works

Results: a table and `benchmarks/results/backends.json` (or --json). A backend that is not
installed is skipped with its reason. Determinism flags are seedtrail's defaults for each
backend (docs/backends.md), so this is the cost of reproducible training, not of a tuned one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

CONFIGS: dict[str, tuple[str, ...]] = {
    "default": (),
    "larger CNN": (
        "--data.image-size", "48", "--model.conv-filters", "32,64,128",
        "--model.dense-units", "128", "--training.epochs", "3",
    ),
}  # fmt: skip
QUICK = (
    "--data.n-samples", "160", "--data.image-size", "16", "--model.conv-filters", "4,8",
    "--model.dense-units", "16", "--training.epochs", "1", "--augment.preview-samples", "4",
)  # fmt: skip


def train_seconds(backend: str, flags: tuple[str, ...], workdir: Path) -> dict[str, Any]:
    """One run: the train stage's seconds per epoch, and its final-weights fingerprint."""
    out = Path(tempfile.mkdtemp(prefix=f"{backend}-", dir=workdir))
    cmd = [sys.executable, "-m", "flows.train", "--no-cache", "--backend", backend, *flags,
           "--output-dir", str(out)]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    (manifest,) = out.glob("*/manifest.json")
    m = json.loads(manifest.read_text())
    train = m["stages"]["train"]
    epochs = m["settings"]["training"]["epochs"]
    return {
        "train_s": train["duration_s"],
        "s_per_epoch": train["duration_s"] / epochs,
        "process_s": time.monotonic() - started,
        "fingerprint": train["fingerprint"],
    }


def installed(backend: str) -> str | None:
    sys.path.insert(0, str(ROOT))
    from seedtrail.runtime.backends import not_installed

    return not_installed(backend)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=RESULTS / "backends.json")
    args = parser.parse_args(argv)
    backends, skipped = [], {}
    for b in args.backends.split(","):
        if reason := installed(b):
            skipped[b] = reason
        else:
            backends.append(b)
    configs = {"quick": QUICK} if args.quick else {c: CONFIGS[c] for c in args.configs.split(",")}
    failed: dict[str, str] = {}
    load_before = os.getloadavg()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        c: {b: [] for b in backends} for c in configs
    }
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        for config, flags in configs.items():
            for _ in range(1 if args.quick else args.repeats):
                for b in [b for b in backends if b not in failed]:
                    try:
                        results[config][b].append(train_seconds(b, flags, Path(tmp)))
                    except RuntimeError as err:  # said in the table, the others go on
                        failed[b] = str(err).strip().splitlines()[-1]
    backends = [b for b in backends if b not in failed]
    load_after = os.getloadavg()
    rows = []
    for config in configs:
        base = None
        for b in backends:
            med = statistics.median(r["s_per_epoch"] for r in results[config][b])
            base = med if base is None else base
            rows.append({"config": config, "backend": b, "s_per_epoch": med,
                         "vs_first": med / base,
                         "fingerprints": sorted({r["fingerprint"][:12] for r in results[config][b]})})  # fmt: skip
    print(
        f"{'configuration':<12} {'backend':<11} {'train s/epoch':>13} {'x first':>8}  fingerprints"
    )
    for r in rows:
        print(f"{r['config']:<12} {r['backend']:<11} {r['s_per_epoch']:>13.2f} "
              f"{r['vs_first']:>8.2f}  {', '.join(r['fingerprints'])}")  # fmt: skip
    for b, reason in skipped.items():
        print(f"skipped {b}: {reason}")
    for b, line in failed.items():
        print(f"failed {b}: {line}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
          f"({os.cpu_count()} cores)")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "rows": rows, "runs": results, "skipped": skipped, "failed": failed,
        "load": {"before": load_before, "after": load_after}, "cores": os.cpu_count(),
    }, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
