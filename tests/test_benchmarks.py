"""The benchmark command still runs (tiny settings); it measures, it does not judge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, cli_env


def test_benchmark_command_runs_on_a_tiny_setting(tmp_path: Path, prefect_api_url: str) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--skip",
         "server,sweep,cache,determinism", "--json", str(out)],
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
