"""The oneDNN ISA cap (determinism.cpu_isa): set before TensorFlow loads, in every process
that trains, recorded in the environment, named by compare, and refused when it cannot hold.

Whether a cap changes the bytes depends on the CPU; these tests assert what must hold on
any x86-64 machine: oneDNN reports the capped ISA, the manifest records it, compare names it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from seedtrail.compare.explanation import compare_manifests
from seedtrail.core.errors import InputError
from seedtrail.runtime import hardware
from tests.conftest import ROOT, TINY, TinyRuns, cli_env, run_module

pytestmark = pytest.mark.skipif(not hardware.is_x86(), reason="oneDNN ISA caps are x86-64 only")

CAP_AVX = {"cap_avx": (("--determinism.cpu-isa", "avx"), {"ONEDNN_VERBOSE": "1"})}
AVX_ISA_LINE = re.compile(r"onednn_verbose,.*isa:Intel AVX(?![-\w])")


@pytest.mark.slow
def test_the_cap_reaches_onednn_is_recorded_and_compare_names_it(tiny_runs: TinyRuns) -> None:
    runs = tiny_runs.get(base=(), **CAP_AVX)
    base, capped = runs["base"], runs["cap_avx"]
    assert AVX_ISA_LINE.search(capped.result.stdout), "oneDNN did not report the AVX cap"
    env_a, env_b = base.manifest["environment"], capped.manifest["environment"]
    assert env_a["determinism"]["onednn_max_cpu_isa"] == "AVX2"  # the portable default
    assert env_b["determinism"]["onednn_max_cpu_isa"] == "AVX"
    fa, fb = base.fingerprints(), capped.fingerprints()
    assert fa["environment"] != fb["environment"]
    assert [fa[s] for s in ("data", "augment", "split", "model")] == [
        fb[s] for s in ("data", "augment", "split", "model")
    ]
    text = compare_manifests(base.manifest, capped.manifest).render()
    assert "the oneDNN ISA cap differs (AVX2 -> AVX)" in text
    assert "determinism.cpu_isa: portable -> avx" in text


@pytest.mark.slow
def test_sweep_workers_train_under_the_cap(
    tiny_runs: TinyRuns, prefect_api_url: str, tmp_path: Path
) -> None:
    single = tiny_runs.get(**CAP_AVX)["cap_avx"]
    sweep_dir = tmp_path / "runs" / "sweep"
    res = run_module(
        "flows.sweep",
        # one worker for both seeds: the cap must reach the process the pool starts, and
        # the second seed must still train under it in that reused process
        [*TINY, "--determinism.cpu-isa", "avx", "--seeds", "0,1", "--workers", "1",
         "--output-dir", str(sweep_dir.parent), "--sweep-dir", str(sweep_dir)],
        cwd=tmp_path, prefect_home=tmp_path / "home", env={"PREFECT_API_URL": prefect_api_url},
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    manifests = [json.loads(p.read_text()) for p in sweep_dir.glob("*/manifest.json")]
    assert len(manifests) == 2
    for m in manifests:
        assert m["environment"]["determinism"]["onednn_max_cpu_isa"] == "AVX"
    (seed0,) = [m for m in manifests if m["seeds"]["root"] == 0]
    assert {k: v["fingerprint"] for k, v in seed0["stages"].items()} == single.fingerprints()


@pytest.mark.slow
def test_a_process_running_tensorflow_under_another_cap_refuses(tmp_path: Path) -> None:
    script = (
        "from seedtrail.runtime import tf_runtime\n"
        "from settings.model import DeterminismSettings as D\n"
        "tf_runtime.import_tf(D(cpu_isa='native'))\n"
        "try:\n"
        "    tf_runtime.configure(D(cpu_isa='avx'), 0, ['CPU:/physical_device:CPU:0'])\n"
        "except tf_runtime.RuntimeConfigError as err:\n"
        "    print('refused:', err)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=cli_env(tmp_path / "home"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (
        "refused: determinism.cpu_isa: TensorFlow already runs in this process under the oneDNN "
        "ISA cap native, the run asks for avx: run it in a new process"
    ) in proc.stdout


@pytest.mark.slow  # a fresh Python process, or the default run's real data
def test_an_unknown_isa_is_one_line_and_exit_2(tmp_path: Path) -> None:
    res = run_module(
        "flows.train", ["--determinism.cpu-isa", "amx", "--output-dir", str(tmp_path / "runs")],
        cwd=tmp_path, prefect_home=tmp_path / "home",
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: determinism.cpu_isa:") and "'avx2'" in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_cap_above_the_cpu_is_refused_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from seedtrail.run.pipeline import preflight
    from settings.cli import load_settings

    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"sse4_1", "avx", "avx2", "fma"}))
    settings = load_settings(
        ["--determinism.cpu-isa", "avx512", "--output-dir", str(tmp_path / "r")]
    )
    with pytest.raises(InputError) as err:
        preflight(settings)
    assert err.value.problems == [
        "determinism.cpu_isa: this CPU cannot run avx512 kernels (lacks avx512f, avx512dq, "
        "avx512bw, avx512vl); use one of: avx2, avx, sse41, native"
    ]
    assert not (tmp_path / "r").exists()
