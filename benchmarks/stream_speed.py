"""`python -m benchmarks.stream_speed FOLDER`: seedtrail's streamed image folder vs plain Keras.

Rows (each pair run back to back in this one invocation, so both see the same machine):

1. images/s over a full epoch, seedtrail (`python -m flows.train`, default workers and
   pixel cache) vs the pipeline a Keras user would write (benchmarks/plain_keras_images.py:
   image_dataset_from_directory, the same albumentations file via tf.numpy_function with
   AUTOTUNE, prefetch, set_random_seed, op determinism); same folder, CNN, batch size.
2. augmentation-bound (a heavy pipeline file, a tiny CNN): seedtrail with 2 workers vs 1.
3. time from the start of the process to the first training step.

Plain Keras: an epoch is timed from Keras' "Epoch k/E" line to its summary line (verbose=2),
validation included. seedtrail (off a terminal it prints no Keras progress): from one
"train: epoch k/E" log line to the next, validation, checkpoint and fingerprints included,
so its epoch 1 is not timed. images/s counts training images over a steady epoch: the
median of the epochs after the first (run --epochs 3 or more). `--repeats N` runs the
speed pair N times, alternated, and reports the median ratio: on this KVM guest identical
epochs of one process vary by 10-20 %, and some last ~20.5 s whatever the pipeline.
Writes benchmarks/results/stream_speed.json.

    python -m benchmarks.stream_speed /tmp/img16k --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.run import RESULTS, ROOT

SIZE = 96


def write_pipelines(work: Path, size: int) -> tuple[Path, Path]:
    """(the issue's user pipeline, a heavier one for the augmentation-bound row)."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A

    user = A.Compose(
        [
            A.RandomResizedCrop(size=(size, size), scale=(0.6, 1.0), p=1.0),
            A.HorizontalFlip(p=0.5),
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.05, p=0.8),
            A.CoarseDropout(num_holes_range=(1, 4), hole_height_range=(4, 12),
                            hole_width_range=(4, 12), p=0.5),
        ]
    )  # fmt: skip
    heavy = A.Compose(
        [
            *user.transforms,
            A.Affine(rotate=(-20, 20), scale=(0.9, 1.1), p=1.0),
            A.GaussianBlur(blur_limit=(3, 7), p=1.0),
            A.GaussNoise(std_range=(0.01, 0.05), p=1.0),
            A.ElasticTransform(alpha=20, sigma=5, p=1.0),
        ]
    )
    paths = work / "user_aug.json", work / "heavy_aug.json"
    A.save(user, str(paths[0]))
    A.save(heavy, str(paths[1]))
    return paths


def timed_run(argv: list[str], env: dict[str, str], first_step_only: bool = False) -> dict:
    """Run; epoch times from Keras' lines, first-step time, peak RSS, wall time.

    `first_step_only`: kill the process once training starts (time to first step only).
    """
    t0 = time.time()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
                "BENCH_T0": str(t0), "SEEDTRAIL_PROGRESS": "0", **env}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, *argv], cwd=ROOT, env=full_env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    epochs: list[float] = []
    # CPU seconds of the process (all its threads) per timed epoch: unlike wall time, not
    # moved by what else the machine runs, so it shows where a ratio comes from.
    epoch_cpu: list[float] = []
    cpu_mark = 0.0
    started: float | None = None
    first_epoch_line: float | None = None
    first_step: float | None = None
    last_epoch_line: float | None = None
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        now = time.time()
        lines.append(line)
        if re.match(r"^Epoch \d+/\d+", line):  # plain Keras, verbose=2
            started, cpu_mark = now, _cpu_s(proc.pid)
            if first_epoch_line is None:
                first_epoch_line = now - t0
        elif started is not None and "loss:" in line:
            epochs.append(now - started)
            epoch_cpu.append(_cpu_s(proc.pid) - cpu_mark)
            started = None
        elif m := re.search(r"train: epoch (\d+)/\d+ ", line):
            # seedtrail off a terminal: one log line per finished epoch (no Keras progress).
            # Epoch k > 1 lasts from line k-1 to line k: validation, checkpoint and
            # fingerprints included (a run's real per-epoch cost).
            cpu = _cpu_s(proc.pid)
            if int(m.group(1)) > 1 and last_epoch_line is not None:
                epochs.append(now - last_epoch_line)
                epoch_cpu.append(cpu - cpu_mark)
            last_epoch_line, cpu_mark = now, cpu
            if first_epoch_line is None:
                first_epoch_line = now - t0
        if m := re.match(r"first training step at ([\d.]+) s", line):
            first_step = float(m.group(1))
        if first_step_only and (first_step is not None or first_epoch_line is not None):
            proc.kill()
            break
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 and not first_step_only:
        raise RuntimeError(f"{argv} failed:\n{''.join(lines[-40:])}")
    n_train = None
    for line in lines:
        if m := re.search(r"Using (\d+) files for training", line):
            n_train = int(m.group(1))
    return {
        "epoch_s": [round(e, 2) for e in epochs],
        "epoch_cpu_s": [round(c, 2) for c in epoch_cpu],
        "first_epoch_line_s": round(first_epoch_line or float("nan"), 1),
        "first_step_s": first_step,
        "wall_s": round(time.time() - t0, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "n_train": n_train,
    }


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process, all its threads (/proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_image_ms(r: dict) -> float:
    """CPU milliseconds per training image over the steady epochs (all threads)."""
    return 1000 * statistics.median(r["epoch_cpu_s"][1:] or r["epoch_cpu_s"]) / r["n_train"]


def seedtrail(
    folder: Path, pipeline: Path, out: Path, home: Path, *flags: str, first_step_only: bool = False
) -> dict:
    argv = ["-m", "flows.train", "--data.kind", "images", "--data.path", str(folder),
            "--data.image-size", str(SIZE), "--augment.pipeline", str(pipeline),
            "--split.val-size", "0.2", "--split.test-size", "0.05", *flags,
            "--output-dir", str(out)]  # fmt: skip
    r = timed_run(argv, {"PREFECT_HOME": str(home)}, first_step_only)
    if first_step_only:
        return r
    (manifest,) = [json.loads(m.read_text()) for m in out.glob("*/manifest.json")]
    r["n_train"] = manifest["stages"]["split"]["info"]["sizes"]["train"]
    r["data_s"] = manifest["stages"]["data"]["duration_s"]
    return r


def plain(
    folder: Path, pipeline: Path, epochs: int, *flags: str, first_step_only: bool = False
) -> dict:
    argv = ["-m", "benchmarks.plain_keras_images", str(folder), "--size", str(SIZE),
            "--pipeline", str(pipeline), "--epochs", str(epochs), *flags]  # fmt: skip
    return timed_run(argv, {}, first_step_only)


def rate(r: dict) -> float:
    """Training images/s of a steady epoch: the median of the epochs after the first (plain
    Keras' first epoch includes tracing; seedtrail's first is not timed)."""
    return r["n_train"] / statistics.median(r["epoch_s"][1:] or r["epoch_s"])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rows", default="speed,workers", help="speed, workers, first-step")
    p.add_argument("--repeats", type=int, default=1, help="speed row: pairs, alternated")
    p.add_argument("--filters", default="8,16", help="CNN of the speed and first-step rows")
    p.add_argument("--dense-units", default="32")
    p.add_argument("--heavy", action="store_true", help="the speed row with the heavy pipeline")
    p.add_argument("--flags", default="", help="more flows.train flags for the speed row")
    a = p.parse_args(argv)
    rows = a.rows.split(",")
    results: dict = {"folder": str(a.folder), "epochs": a.epochs}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        user_aug, heavy_aug = write_pipelines(work, SIZE)
        home = work / "prefect-home"
        cnn = ["--model.conv-filters", a.filters, "--model.dense-units", a.dense_units]
        speed_aug = heavy_aug if a.heavy else user_aug
        plain_cnn = ["--filters", a.filters, "--dense-units", a.dense_units]
        results["config"] = {"cnn": cnn, "heavy": a.heavy, "flags": a.flags}
        if "first-step" in rows:  # cold (index, hashes, pixel cache built) then warm
            base = plain(a.folder, user_aug, 1, *plain_cnn, first_step_only=True)
            cold = seedtrail(a.folder, user_aug, work / "f1", home, *cnn, first_step_only=True)
            warm = seedtrail(a.folder, user_aug, work / "f1", home, *cnn, first_step_only=True)
            results["first_step"] = {"plain_keras": base, "seedtrail_cold": cold,
                                     "seedtrail_warm": warm}  # fmt: skip
            print(
                f"time to first training step: plain Keras {base['first_step_s']} s; seedtrail "
                f"epoch 1 done at {cold['first_epoch_line_s']} s (new output folder: hash, "
                f"decode into the pixel cache), {warm['first_epoch_line_s']} s (index and "
                "cache reused)",
                flush=True,
            )
        if "speed" in rows:
            # Pairs alternate (plain, seedtrail, plain, ...): a slow spell of the machine
            # hits both, and the median of the pairs' ratios is the figure.
            pairs = []
            for i in range(a.repeats):
                base = plain(a.folder, speed_aug, a.epochs, *plain_cnn)
                ours = seedtrail(a.folder, speed_aug, work / f"o{i}", home,
                                 "--training.epochs", str(a.epochs), *cnn, *a.flags.split())  # fmt: skip
                pairs.append({"plain_keras": base, "seedtrail": ours,
                              "ratio_images_per_s": rate(ours) / rate(base)})  # fmt: skip
                print(
                    f"epoch images/s: plain Keras {rate(base):.0f}, seedtrail {rate(ours):.0f} "
                    f"({rate(ours) / rate(base):.2f}x); epochs {base['epoch_s']} vs "
                    f"{ours['epoch_s']}; CPU ms per image {cpu_per_image_ms(base):.1f} vs "
                    f"{cpu_per_image_ms(ours):.1f}; peak RSS {base['peak_rss_mb']} vs "
                    f"{ours['peak_rss_mb']} MB",
                    flush=True,
                )
            ratios = sorted(p["ratio_images_per_s"] for p in pairs)
            results["speed"] = {"pairs": pairs, "median_ratio": statistics.median(ratios)}
            if a.repeats > 1:
                print(f"median of {a.repeats} pairs: {statistics.median(ratios):.2f}x "
                      f"(all: {', '.join(f'{r:.2f}x' for r in ratios)})", flush=True)  # fmt: skip
        if "workers" in rows:
            tiny = ["--model.conv-filters", "4", "--model.dense-units", "8",
                    "--training.epochs", str(a.epochs)]  # fmt: skip
            one = seedtrail(a.folder, heavy_aug, work / "w1", home, *tiny, "--data.workers", "1")
            two = seedtrail(a.folder, heavy_aug, work / "w2", home, *tiny, "--data.workers", "2")
            results["workers"] = {"1": one, "2": two, "ratio": rate(two) / rate(one)}
            print(
                f"augmentation-bound images/s: 1 worker {rate(one):.0f}, 2 workers "
                f"{rate(two):.0f} ({rate(two) / rate(one):.2f}x); epochs {one['epoch_s']} vs "
                f"{two['epoch_s']}",
                flush=True,
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stream_speed.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
