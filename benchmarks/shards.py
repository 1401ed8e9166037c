"""`python -m benchmarks.shards`: what `training.shards` buys on this machine's cores, as ratios.

One residual CNN on 64-px images (compute-bound: conv layers of 32-128 filters), trained
with `fit` on the same random batches by three kinds of process, each in its own process
(thread pools are fixed per process), alternated in one invocation, medians reported:

- `seedtrail K=k, inter=t`: seedtrail's runtime (portable profile, op determinism, one
  intra-op thread) and its sharded step (`seedtrail.runtime.shards`), with t inter-op threads;
- `plain keras`: the same model and data as a user would write it, TensorFlow's defaults
  (every core for intra-op and inter-op threads, no determinism settings).

Measured: training samples per second after a warm-up epoch. Results: a table and
`benchmarks/results/shards.json` (or --json). Also the weights fingerprint of every
seedtrail process, so the run shows that the inter-op threads changed no byte.

    python -m benchmarks.shards                 # the comparisons (~10 min on 2 cores)
    python -m benchmarks.shards --quick         # tiny: checks the harness works
    python -m benchmarks.shards --efficiency    # also per-shard efficiency at shard sizes 4-64
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def worker(args: argparse.Namespace) -> None:
    """One process: configure TensorFlow, train `steps` batches, print one JSON line."""
    if args.mode == "seedtrail":
        # What seedtrail's portable profile does before TensorFlow loads (tf_runtime).
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
        os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))
    from seedtrail.runtime.quiet import import_tensorflow

    tf = import_tensorflow()
    if args.mode == "seedtrail":
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(args.inter)
        tf.config.experimental.enable_op_determinism()
    import keras
    import numpy as np
    from keras import layers

    keras.utils.set_random_seed(0)
    init = {"kernel_initializer": keras.initializers.GlorotUniform(seed=1)}

    def conv(x: Any, f: int, k: int = 3, act: str | None = "relu") -> Any:
        return layers.Conv2D(f, k, padding="same", activation=act, **init)(x)

    if args.arch == "default":  # seedtrail's built-in CNN at the default settings
        from seedtrail.inputs.builtin_models import cnn

        model = cnn((args.size, args.size, 1), 4, seed=0)
        channels = 1
    else:
        inp = keras.Input((args.size, args.size, 3))
        x = conv(inp, args.width)
        for f in (args.width, 2 * args.width, 4 * args.width):  # three residual stages
            y = conv(conv(x, f), f, act=None)
            s = x if x.shape[-1] == f else conv(x, f, 1, None)
            x = layers.MaxPooling2D(2)(layers.Activation("relu")(layers.Add()([y, s])))
        x = layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inp, layers.Dense(4, activation="softmax", **init)(x))
        channels = 3
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    runner = model
    if args.mode == "seedtrail" and args.shards > 1:
        from seedtrail.runtime.shards import sharded

        runner = sharded(model, args.shards)
        runner.compile(
            optimizer=model.optimizer,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=False,
        )
    rng = np.random.default_rng(0)
    n = args.batch * args.steps
    x_all = rng.random((n, args.size, args.size, channels), dtype=np.float32)
    y_all = rng.integers(0, 4, n)
    runner.fit(
        x_all[: 2 * args.batch],
        y_all[: 2 * args.batch],
        batch_size=args.batch,
        epochs=1,
        shuffle=False,
        verbose=0,
    )  # warm-up: tracing
    ticks, start, cpu = thread_ticks(), time.perf_counter(), time.process_time()
    runner.fit(x_all, y_all, batch_size=args.batch, epochs=1, shuffle=False, verbose=0)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    share = busiest_share(ticks, thread_ticks())

    from seedtrail.runtime.keras_io import weights_fingerprint

    in_flight = ops_in_flight(tf, lambda: runner.fit(x_all[: 4 * args.batch], y_all[: 4 * args.batch],
                              batch_size=args.batch, epochs=1, shuffle=False, verbose=0))  # fmt: skip
    print(json.dumps({"samples_per_s": n / wall, "cpu_per_wall": cpu / wall,
                      "samples_per_cpu_s": n / cpu, "ops_in_flight": in_flight,
                      "busiest_thread_share": share,
                      "weights": weights_fingerprint(model)[:12]}))  # fmt: skip


def ops_in_flight(tf: Any, work: Any) -> float | None:
    """How many TensorFlow compute threads run an op at once, on average over the time any
    does (TensorFlow's profiler: each inter-op thread's op intervals). Load cannot fake it:
    2.0 means two shards' kernels were always in flight together; 1.0, one after another."""
    import glob
    import tempfile

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        work()
        tf.profiler.experimental.stop()
        (path,) = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)
        space = xplane_pb2.XSpace.FromString(Path(path).read_bytes())
    edges = []
    for plane in space.planes:
        for line in plane.lines if plane.name == "/host:CPU" else ():
            if not line.name.startswith("tf_Compute"):
                continue
            spans = sorted(
                (line.timestamp_ns * 1000 + e.offset_ps, e.duration_ps) for e in line.events
            )
            merged: list[list[int]] = []  # a thread's busy time: its op intervals, merged
            for start, length in spans:
                if merged and start <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], start + length)
                else:
                    merged.append([start, start + length])
            edges += [(a, 1) for a, _ in merged] + [(b, -1) for _, b in merged]
    busy = any_busy = 0
    level, last = 0, 0
    for t, step in sorted(edges):
        if level:
            busy, any_busy = busy + level * (t - last), any_busy + (t - last)
        level, last = level + step, t
    return round(busy / any_busy, 3) if any_busy else None


def thread_ticks() -> dict[str, int]:
    """CPU time (clock ticks) of each thread of this process (Linux; empty elsewhere)."""
    ticks = {}
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[stat.parent.name] = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks


def busiest_share(before: dict[str, int], after: dict[str, int]) -> float | None:
    """The busiest thread's share of the CPU time spent between two snapshots: a bound that
    load cannot blur (however idle the cores, the work takes at least that share of it)."""
    spent = [t - before.get(tid, 0) for tid, t in after.items()]
    return round(max(spent) / sum(spent), 3) if spent and sum(spent) > 0 else None


def measure(mode: str, shards: int, inter: int, common: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.shards", "--worker", "--mode", mode,
           "--shards", str(shards), "--inter", str(inter), *common]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"benchmark worker failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def load_average() -> float:
    return os.getloadavg()[0]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="seedtrail", help=argparse.SUPPRESS)
    p.add_argument("--inter", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--shards", type=int, default=2, help="K of the comparisons (default 2)")
    p.add_argument(
        "--arch",
        choices=("resnet", "default"),
        default="resnet",
        help="resnet: the residual CNN; default: seedtrail's built-in CNN (24 px)",
    )
    p.add_argument("--size", type=int, default=64, help="image side in pixels")
    p.add_argument("--width", type=int, default=32, help="filters of the first stage")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=8, help="timed batches per process")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cores", type=int, default=None, help="inter-op threads of 'all cores'")
    p.add_argument("--efficiency", action="store_true", help="also K=1..8 on one thread")
    p.add_argument("--quick", action="store_true", help="tiny settings, one repeat")
    p.add_argument("--json", type=Path, default=RESULTS / "shards.json")
    args = p.parse_args()
    if args.quick:
        args.size, args.width, args.batch, args.steps, args.repeats = 16, 4, 8, 2, 1
    if args.worker:
        worker(args)
        return
    from seedtrail.runtime.shards import machine_threads

    cores = args.cores or machine_threads()
    common = ["--arch", args.arch, "--size", str(args.size), "--width", str(args.width), "--batch", str(args.batch),
              "--steps", str(args.steps)]  # fmt: skip
    k = args.shards
    configs = {
        f"seedtrail K={k}, 1 inter-op thread": ("seedtrail", k, 1),
        f"seedtrail K={k}, {cores} inter-op threads": ("seedtrail", k, cores),
        "plain keras, TF defaults": ("plain", 1, 0),
    }
    if args.efficiency:
        for kk in (1, 2, 4, 8):
            if args.batch % kk == 0 and kk != k:
                configs[f"seedtrail K={kk}, 1 inter-op thread"] = ("seedtrail", kk, 1)
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    loads: list[float] = []
    for _ in range(args.repeats):  # alternated: every config sees the same machine state
        for name, (mode, kk, inter) in configs.items():
            loads.append(load_average())
            samples[name].append(measure(mode, kk, inter, common))
            got = samples[name][-1]
            print(f"  {name}: {got['samples_per_s']:.2f} samples/s (load {loads[-1]:.1f})",
                  file=sys.stderr, flush=True)  # fmt: skip
    med = {n: statistics.median(s["samples_per_s"] for s in v) for n, v in samples.items()}
    one, many = f"seedtrail K={k}, 1 inter-op thread", f"seedtrail K={k}, {cores} inter-op threads"
    ratios = {
        f"{cores} cores vs 1, K={k} (goal >= 1.7x on 2 cores)": med[many] / med[one],
        f"seedtrail on {cores} cores vs plain keras (goal >= 0.9x)": med[many] / med["plain keras, TF defaults"],
    }  # fmt: skip
    same = {
        s["weights"] for n, v in samples.items() if n.startswith(f"seedtrail K={k},") for s in v
    }
    result = {
        "model": (f"residual CNN, width {args.width}" if args.arch == "resnet" else "built-in CNN")
        + f", {args.size}-px images, batch {args.batch}",
        "cores": cores,
        "load_average_during": [min(loads), statistics.median(loads), max(loads)],
        "samples_per_s": {n: [round(s["samples_per_s"], 2) for s in v] for n, v in samples.items()},
        "cpu_per_wall": {n: [round(s["cpu_per_wall"], 2) for s in v] for n, v in samples.items()},
        "samples_per_cpu_s": {
            n: [round(s["samples_per_cpu_s"], 2) for s in v] for n, v in samples.items()
        },
        "ops_in_flight": {n: [s["ops_in_flight"] for s in v] for n, v in samples.items()},
        "busiest_thread_share": {
            n: [s.get("busiest_thread_share") for s in v] for n, v in samples.items()
        },
        "median_samples_per_s": {n: round(v, 2) for n, v in med.items()},
        "ratios": {n: round(v, 3) for n, v in ratios.items()},
        "same_weights_for_any_inter_op_threads": len(same) == 1,
        "weights": {n: sorted({s["weights"] for s in v}) for n, v in samples.items()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"{result['model']}; {cores} cores; load average {result['load_average_during']}")
    for n, v in med.items():
        print(f"  {n:40s} {v:8.2f} samples/s  {samples[n][0]['weights']}")
    for n, v in ratios.items():
        print(f"  {n}: {v:.2f}x")
    print(f"  same weights for any inter-op threads at K={k}: {len(same) == 1}")
    for n, v in samples.items():
        print(
            f"  {n:40s} ops in flight {statistics.median(s['ops_in_flight'] or 0 for s in v):.2f}"
            f"  samples per CPU-second {statistics.median(s['samples_per_cpu_s'] for s in v):.2f}"
        )


if __name__ == "__main__":
    main()
