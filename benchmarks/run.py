"""`python -m benchmarks.run`: what reproducibility and orchestration cost, as ratios.

Each comparison runs its baseline and its subject alternately in the same
invocation (so both see the same machine state) and reports medians and min/max.
Results: a table on the terminal and `benchmarks/results/latest.json`.

    python -m benchmarks.run            # full (about 10-15 minutes on 2 cores)
    python -m benchmarks.run --quick    # tiny settings, one repeat: checks the harness works
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

TINY_FLOW = ["--data.n-samples", "200", "--data.image-size", "16", "--model.conv-filters", "4,8",
             "--model.dense-units", "16", "--training.epochs", "2"]  # fmt: skip
TINY_PLAIN = ["--n-samples", "200", "--image-size", "16", "--filters", "4,8",
              "--dense-units", "16", "--epochs", "2"]  # fmt: skip


@dataclass
class Comparison:
    name: str
    baseline: str
    subject: str
    unit: str
    goal: str
    baseline_values: list[float] = field(default_factory=list)
    subject_values: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def ratio(self) -> float:
        if not (self.subject_values and self.baseline_values):
            return math.nan  # e.g. every cold start failed: the note says so
        return statistics.median(self.subject_values) / statistics.median(self.baseline_values)

    @property
    def delta(self) -> float:
        if not (self.subject_values and self.baseline_values):
            return math.nan
        return statistics.median(self.subject_values) - statistics.median(self.baseline_values)

    def row(self) -> list[str]:
        def spread(v: list[float]) -> str:
            return f"{statistics.median(v):.2f} [{min(v):.2f}-{max(v):.2f}]" if v else "none"

        return [self.name, f"{self.baseline}: {spread(self.baseline_values)}",
                f"{self.subject}: {spread(self.subject_values)}", f"{self.ratio:.2f}x",
                f"{self.delta:+.2f}", self.goal]  # fmt: skip


@dataclass
class Proc:
    wall_s: float
    max_rss_mb: float
    stdout: str


def run(argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> Proc:
    """Run a command; wall time and the peak RSS of it and its waited-for children."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{out[-3000:]}")
    return Proc(wall, usage.ru_maxrss / 1024, out)


def py(*args: str) -> list[str]:
    return [sys.executable, *args]


def alternate(
    n: int, cmp: Comparison, baseline: Callable[[], float], subject: Callable[[], float]
) -> Comparison:
    for i in range(n):  # alternate, and swap who goes first, so drift hits both alike
        pair = (baseline, subject) if i % 2 == 0 else (subject, baseline)
        for fn in pair:
            value = fn()
            (cmp.baseline_values if fn is baseline else cmp.subject_values).append(value)
    return cmp


class Bench:
    def __init__(self, quick: bool, repeats: int, work: Path) -> None:
        self.quick, self.repeats, self.work = quick, repeats, work
        self.flow_args = TINY_FLOW if quick else []
        self.plain_args = TINY_PLAIN if quick else []
        self.home = work / "prefect-home"  # one warm PREFECT_HOME, as a user has
        self.env = {"PREFECT_HOME": str(self.home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        self.counter = 0
        self.rss: dict[str, list[float]] = {"plain": [], "flow": []}

    def out_dir(self) -> Path:
        self.counter += 1
        return self.work / f"out{self.counter}"

    def plain(self) -> float:
        p = run(py("-m", "benchmarks.plain_keras", *self.plain_args), self.env)
        if "plain keras imported: []" not in p.stdout:  # it would pay for Prefect too
            raise RuntimeError(f"the plain Keras baseline is not plain:\n{p.stdout[-2000:]}")
        self.rss["plain"].append(p.max_rss_mb)
        return p.wall_s

    def flow(self, *extra: str, env: dict[str, str] | None = None, out: Path | None = None) -> Proc:
        args = [
            "-m",
            "flows.train",
            *self.flow_args,
            *extra,
            "--output-dir",
            str(out or self.out_dir()),
        ]
        return run(py(*args), {**self.env, **(env or {})})

    def flow_wall(self, env: dict[str, str] | None = None) -> float:
        p = self.flow(env=env)
        self.rss["flow"].append(p.max_rss_mb)
        return p.wall_s

    def train_stage_s(self, *flags: str, env: dict[str, str]) -> float:
        out = self.out_dir()
        self.flow(*flags, env=env, out=out)
        (manifest,) = out.glob("*/manifest.json")
        return json.loads(manifest.read_text())["stages"]["train"]["duration_s"]

    def cold_start(self, n: int) -> Comparison:
        """The README's first command on an empty PREFECT_HOME, a CPU hog on the other core."""
        cmp = Comparison(f"first run, empty PREFECT_HOME + CPU hog ({n} tries)", "warm home",
                         "empty home", "s", f"{n} of {n} succeed")  # fmt: skip
        hog = subprocess.Popen(py("-c", "while True: pass"))
        try:
            for i in range(n):
                cmp.baseline_values.append(self.flow().wall_s)
                home = {"PREFECT_HOME": str(self.work / f"cold-home-{i}")}
                try:
                    cmp.subject_values.append(self.flow(env=home).wall_s)
                except RuntimeError as err:  # counted, not hidden
                    cmp.note += f"try {i + 1} failed: {str(err).splitlines()[0][:200]}; "
        finally:
            hog.kill()
            hog.wait()
        cmp.note = f"{len(cmp.subject_values)} of {n} succeeded. {cmp.note}".strip()
        return cmp


def prefect_server(home: Path) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        py("-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)),
        env={**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("prefect server did not start")


def augmentation_throughput(quick: bool, repeats: int) -> Comparison:
    """Per-sample-seeded vs unseeded albumentations on the same images, images/s."""
    import numpy as np

    from settings.model import AugmentSettings, DataSettings
    from tasks.augment import augment_epoch, build_augmenter
    from tasks.data import load_dataset

    x = load_dataset(DataSettings(n_samples=400 if quick else 4000), 0).x
    seeded = build_augmenter(AugmentSettings())
    plain = build_augmenter(AugmentSettings()).compose  # same pipeline, its own private stream
    idx = np.arange(len(x))

    def unseeded() -> float:
        t = time.perf_counter()
        np.stack([plain(image=img)["image"] for img in x])
        return len(x) / (time.perf_counter() - t)

    def per_sample() -> float:
        t = time.perf_counter()
        augment_epoch(seeded, x, idx, augment_seed=1, epoch=0)
        return len(x) / (time.perf_counter() - t)

    cmp = Comparison("seeded augmentation", "unseeded", "per-sample seeded", "img/s", ">= 0.8x")
    return alternate(max(repeats, 3), cmp, unseeded, per_sample)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="Tiny settings, one repeat.")
    p.add_argument("--repeats", type=int, default=3, help="Alternations per comparison.")
    p.add_argument(
        "--skip",
        default="",
        help="Comma-separated: server,sweep,cache,determinism,isa,augment,cold.",
    )
    p.add_argument("--json", type=Path, default=RESULTS / "latest.json")
    args = p.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    repeats = 1 if args.quick else args.repeats
    results: list[Comparison] = []

    with tempfile.TemporaryDirectory(prefix="seedtrail-bench-") as tmp:
        b = Bench(args.quick, repeats, Path(tmp))
        if not args.quick:
            b.flow()  # warm the Prefect home and OS file caches; not measured

        if "augment" not in skip:
            results.append(augmentation_throughput(args.quick, repeats))

        empty = Comparison(
            "prefect alone", "python -c pass", "empty @flow, ephemeral API", "s", "(context)"
        )
        results.append(alternate(repeats, empty, lambda: run(py("-c", "pass")).wall_s,
                                 lambda: run(py("-m", "benchmarks.empty_flow"), b.env).wall_s))  # fmt: skip

        results.append(alternate(
            repeats,
            Comparison("orchestration (ephemeral API)", "plain Keras", "flows.train", "s",
                       "+ <= empty flow's cost"),
            b.plain, b.flow_wall,
        ))  # fmt: skip
        if "cache" not in skip:
            rerun = Comparison("cached rerun (ephemeral API)", "empty @flow", "identical rerun", "s",
                               "+ <= 1 s")  # fmt: skip
            warm = b.out_dir()
            b.flow(out=warm)
            results.append(alternate(repeats, rerun,
                                     lambda: run(py("-m", "benchmarks.empty_flow"), b.env).wall_s,
                                     lambda: b.flow(out=warm).wall_s))  # fmt: skip

        server = None
        if "server" not in skip:
            server, url = prefect_server(Path(tmp) / "server-home")
            api = {"PREFECT_API_URL": url}
            results.append(alternate(
                repeats,
                Comparison("orchestration (prefect server)", "plain Keras", "flows.train", "s", "<= 1.15x"),
                b.plain, lambda: b.flow_wall(api),
            ))  # fmt: skip
        else:
            api = {}
        try:
            if "determinism" not in skip:
                results.append(alternate(
                    repeats,
                    Comparison("op determinism (train stage)", "off", "on", "s", "~1x"),
                    lambda: b.train_stage_s("--determinism.op-determinism", "false", env=api),
                    lambda: b.train_stage_s("--determinism.op-determinism", "true", env=api),
                ))  # fmt: skip
            if "isa" not in skip:
                results.append(alternate(
                    repeats,
                    Comparison("portable profile (train stage)", "native, TF's oneDNN default",
                               "portable (default)", "s", "<= 1.5x"),
                    lambda: b.train_stage_s("--determinism.cpu-isa", "native",
                                            "--determinism.onednn-ops", "default", env=api),
                    lambda: b.train_stage_s(env=api),
                ))  # fmt: skip
            if "cache" not in skip:
                cached = Comparison("cached rerun (prefect server)", "first run", "identical rerun",
                                    "s", "<= 0.25x")  # fmt: skip
                for _ in range(repeats):
                    out = b.out_dir()
                    cached.baseline_values.append(b.flow(out=out, env=api).wall_s)
                    cached.subject_values.append(b.flow(out=out, env=api).wall_s)
                results.append(cached)
            if "sweep" not in skip:
                n = "2" if args.quick else "8"
                sweep = Comparison(
                    f"sweep of {n} seeds", "--workers 1", "--workers 2", "s", "~0.5x (2x faster)"
                )

                def sweep_wall(workers: str) -> float:
                    cmd = py("-m", "flows.sweep", "--n-seeds", n, "--workers", workers,
                             *b.flow_args, "--output-dir", str(b.out_dir()))  # fmt: skip
                    return run(cmd, {**b.env, **api}).wall_s

                results.append(
                    alternate(1, sweep, lambda: sweep_wall("1"), lambda: sweep_wall("2"))
                )
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)

        rss = Comparison("peak memory (RSS)", "plain Keras", "flows.train", "MiB", "close")
        rss.baseline_values, rss.subject_values = b.rss["plain"], b.rss["flow"]
        results.append(rss)
        if "cold" not in skip:
            results.append(b.cold_start(1 if args.quick else 5))

    print_table(results)
    payload = {
        "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "quick": args.quick,
        "repeats": repeats,
        "results": [{**asdict(c), "ratio": c.ratio} for c in results],
    }  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    from seedtrail.core.atomic import write_json

    write_json(args.json, payload)
    print(f"\nwrote {args.json}")
    return 0


def _cpu() -> str:
    from seedtrail.runtime.hardware import cpu_facts

    facts = cpu_facts()
    isa = [f for f in ("avx2", "avx512f", "amx_tile") if facts["isa"][f]]
    return f"{facts['model']} ({', '.join(isa) or 'no avx2'}, caches {facts['cache']})"


def print_table(results: list[Comparison]) -> None:
    rows = [["benchmark", "baseline median [min-max]", "subject median [min-max]", "ratio",
             "difference", "goal"]]  # fmt: skip
    rows += [c.row() for c in results]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"\nmachine: {_cpu()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    for i, r in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for c in results:
        if c.note:
            print(f"{c.name}: {c.note}")


if __name__ == "__main__":
    sys.exit(main())
