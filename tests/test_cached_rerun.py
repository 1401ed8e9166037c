"""A fully cached rerun costs Prefect's start and little else: it never imports TensorFlow.

The environment stage records the stack without TensorFlow, and the TF stages (model,
train, evaluate) import it only when they actually run; on a cache hit none of them does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY, TinyRuns, cli_env

# Run the real CLI in this process, then say whether TensorFlow was ever imported.
PROBE = """
import runpy, sys
sys.argv = ["flows.train", *sys.argv[1:]]
try:
    runpy.run_module("flows.train", run_name="__main__")
except SystemExit as exit:
    print("exit", exit.code, "tensorflow imported:", "tensorflow" in sys.modules)
"""


@pytest.mark.slow
def test_an_identical_rerun_hits_every_stage_without_importing_tensorflow(
    tiny_runs: TinyRuns, tmp_path: Path, prefect_api_url: str
) -> None:
    base = tiny_runs.get(base=())["base"]
    out = tmp_path / "runs"
    shutil.copytree(base.output_dir / ".store", out / ".store")  # the first run's cache
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *TINY, "--output-dir", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**cli_env(tmp_path / "home"), "PREFECT_API_URL": prefect_api_url},
    )  # fmt: skip
    assert "exit 0 tensorflow imported: False" in proc.stdout, proc.stdout + proc.stderr
    (manifest,) = out.glob("*/manifest.json")
    m = json.loads(manifest.read_text())
    assert m["status"] == "complete"
    assert {s: r["cached"] for s, r in m["stages"].items()} == {
        s: s != "environment" for s in m["stages"]
    }
    assert {s: r["fingerprint"] for s, r in m["stages"].items()} == base.fingerprints()
    # a cache hit carries train's per-batch and per-variable records (issue 20)
    for record in ("batch_losses", "variable_fingerprints"):
        want = base.manifest["stages"]["train"]["info"][record]
        assert want and m["stages"]["train"]["info"][record] == want, record
    # the run directory is whole: the model and pictures came from the store
    assert (manifest.parent / "model.keras").is_file()
