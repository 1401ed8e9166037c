"""`python -m benchmarks.stream_memory FOLDER [FOLDER ...]`: peak RSS of a run against folder size.

Each folder (make them with `python -m benchmarks.make_images`) is trained on by a fresh
`python -m flows.train` process: small CNN, one epoch by default, 96 px, a fresh output
folder (so the index and the pixel cache are built in the run). Prints one row per
folder: images, peak RSS of the run's process tree (its largest process), data and
train stage times, wall time; writes benchmarks/results/stream_memory.json.

    python -m benchmarks.stream_memory /tmp/img4k /tmp/img16k /tmp/img50k
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.run import RESULTS, py, run

SMALL_CNN = ["--model.conv-filters", "8,16", "--model.dense-units", "32"]


def measure(folder: Path, size: int, epochs: int, extra: list[str], work: Path) -> dict:
    out = work / folder.name
    argv = ["-m", "flows.train", "--data.kind", "images", "--data.path", str(folder),
            "--data.image-size", str(size), "--training.epochs", str(epochs), *SMALL_CNN,
            *extra, "--output-dir", str(out)]  # fmt: skip
    p = run(py(*argv), {"PREFECT_HOME": str(work / "prefect-home"), "SEEDTRAIL_PROGRESS": "0"})
    (manifest,) = [json.loads(m.read_text()) for m in out.glob("*/manifest.json")]
    stages = manifest["stages"]
    return {
        "folder": str(folder),
        "images": stages["data"]["info"]["n_samples"],
        "peak_rss_mb": round(p.max_rss_mb),
        "data_s": round(stages["data"]["duration_s"], 1),
        "train_s": round(stages["train"]["duration_s"], 1),
        "wall_s": round(p.wall_s, 1),
        "epochs": epochs,
        "image_size": size,
        "args": extra,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", type=Path, nargs="+")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--extra", default="", help="more flows.train flags, space-separated")
    a = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for folder in a.folders:
            row = measure(folder, a.size, a.epochs, a.extra.split(), Path(tmp))
            rows.append(row)
            print(
                f"{row['images']:>7} images  peak RSS {row['peak_rss_mb']:>6} MB  "
                f"data {row['data_s']:>6.1f} s  train {row['train_s']:>7.1f} s  "
                f"wall {row['wall_s']:>7.1f} s",
                flush=True,
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stream_memory.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
