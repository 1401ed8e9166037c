"""The benchmark command still runs (tiny settings); it measures, it does not judge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env


@pytest.mark.slow
def test_benchmark_command_runs_on_a_tiny_setting(tmp_path: Path, prefect_api_url: str) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--skip",
         "server,sweep,cache,determinism,isa,cold", "--json", str(out)],
        # the session's server spares the flows a temporary API start: this checks the
        # harness, it does not time anything
        cwd=ROOT, env=cli_env(tmp_path / "home", PREFECT_API_URL=prefect_api_url),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    names = {r["name"] for r in data["results"]}
    assert {"seeded augmentation", "orchestration (ephemeral API)", "peak memory (RSS)"} <= names
    for r in data["results"]:
        assert r["baseline_values"] and r["subject_values"] and r["ratio"] > 0, r["name"]
    assert "orchestration (ephemeral API)" in proc.stdout and data["machine"]["cores"] >= 1


def test_the_harness_refuses_a_baseline_that_imports_prefect(monkeypatch, tmp_path: Path) -> None:
    """The baseline must not pay for what it is compared against: benchmarks.run checks the
    line benchmarks/plain_keras.py ends with (its real run is in the test above)."""
    from benchmarks import run as bench

    outputs = iter(["plain keras imported: []\n", "plain keras imported: ['prefect']\n"])
    monkeypatch.setattr(bench, "run", lambda argv, env: bench.Proc(1.0, 10.0, next(outputs)))
    b = bench.Bench(quick=True, repeats=1, work=tmp_path)
    assert b.plain() == 1.0
    with pytest.raises(RuntimeError, match="not plain"):
        b.plain()


@pytest.mark.slow
def test_shards_benchmark_runs_on_a_tiny_setting(tmp_path: Path) -> None:
    """benchmarks/shards.py: every configuration measured, the same weights for 1 and N threads."""
    out = tmp_path / "shards.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.shards", "--quick", "--cores", "2", "--json", str(out)],
        cwd=ROOT, env=cli_env(tmp_path / "home"), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert len(data["median_samples_per_s"]) == 3 and all(
        v > 0 for v in data["median_samples_per_s"].values()
    )
    assert data["same_weights_for_any_inter_op_threads"] is True
    assert all(v[0] >= 1.0 for v in data["ops_in_flight"].values() if v[0] is not None)
