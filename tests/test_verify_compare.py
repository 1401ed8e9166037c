"""flows.verify and flows.compare on real tiny runs, each run in its own process: the determinism matrix.

| case                                        | runs                       | expected                        |
|---------------------------------------------|----------------------------|---------------------------------|
| same settings twice                         | base, its rerun            | verify exit 0, all stages match |
| other output dir, cwd and PYTHONHASHSEED    | base vs again              | compare exit 0                  |
| intra-op threads 1 vs 2, op determinism off | base vs threads2_opdet_off | exit 1, names both              |
| model seed pinned                           | base vs pinned             | upstream equal, model+ differ   |
| another root seed                           | base vs seed1              | root and every stage seed       |
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import urllib.request
from pathlib import Path

import pytest

from seedtrail.compare.explanation import compare_manifests
from settings.seeds import STAGES
from tests.conftest import Completed, TinyRuns, run_module, seed1_runs
from tests.manifests import write_sealed

UPSTREAM = ("data", "augment", "split")

# Same specs as the other test files: the session shares one run per name.
BASE: dict = {"base": ()}
AGAIN = {"again": ((), {"PYTHONHASHSEED": "123"})}
SEED1 = {"seed1": ("--seed", "1")}
# Two settings in one run (a run is ~10 CPU s of the suite): compare must name each, and
# neither setting ever touches the data stages.
THREADS2 = {
    "threads2_opdet_off": (
        "--determinism.intra-op-threads",
        "2",
        "--determinism.op-determinism",
        "false",
    )
}


def cli(module: str, *args: str | Path, tmp_path: Path, api_url: str) -> Completed:
    return run_module(
        module,
        [str(a) for a in args],
        cwd=tmp_path,
        prefect_home=tmp_path / "prefect-home",
        env={"PREFECT_API_URL": api_url},
    )


def assert_clean_exit(res: Completed, code: int) -> None:
    assert res.returncode == code, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    assert "Traceback" not in res.stderr + res.stdout


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The stage rows of the printed table: stage -> its columns."""
    rows = (re.split(r"\s{2,}", line.strip()) for line in stdout.splitlines())
    return {cols[0]: cols for cols in rows if cols[0] in STAGES}


def _post(api_url: str, path: str, body: dict) -> list[dict]:
    req = urllib.request.Request(
        f"{api_url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def verify_flow_run(api_url: str, recorded: Path) -> tuple[dict, list[str], dict[str, dict]]:
    """The newest verify flow run of `recorded`: the run, its log lines, its artifacts by key."""
    (run,) = _post(api_url, "/flow_runs/filter", {
        "flow_runs": {"name": {"any_": [f"verify-{recorded.name}"]}},
        "sort": "EXPECTED_START_TIME_DESC", "limit": 1,
    })  # fmt: skip
    logs = _post(api_url, "/logs/filter", {
        "logs": {"flow_run_id": {"any_": [run["id"]]}}, "sort": "TIMESTAMP_ASC",
    })  # fmt: skip
    artifacts = _post(api_url, "/artifacts/filter", {
        "artifacts": {"flow_run_id": {"any_": [run["id"]]}},
    })  # fmt: skip
    return run, [log["message"] for log in logs], {a["key"]: a for a in artifacts}


@pytest.mark.slow
def test_verify_of_a_fresh_run_matches_every_stage(
    tiny_runs: TinyRuns, tmp_path: Path, prefect_api_url: str
) -> None:
    base = tiny_runs.get(**BASE)["base"]
    out = tmp_path / "rerun"
    # The original's stage cache, where the rerun goes: verify must recompute, not replay it.
    shutil.copytree(base.output_dir / ".store", out / ".store")
    res = cli("flows.verify", base.run_dir, "--output-dir", out, tmp_path=tmp_path, api_url=prefect_api_url)  # fmt: skip
    assert_clean_exit(res, 0)
    rows = table_rows(res.stdout)
    assert list(rows) == list(STAGES)
    assert all(cols[-1] == "yes" for cols in rows.values()), res.stdout
    assert "every stage matches (7 of 7)" in res.stdout
    # The rerun is a real run in the fresh directory, byte-identical stage by stage.
    (rerun,) = [p for p in out.iterdir() if (p / "manifest.json").exists()]
    again = json.loads((rerun / "manifest.json").read_text())
    assert again["status"] == "complete"
    assert {s: v["fingerprint"] for s, v in again["stages"].items()} == base.fingerprints()
    assert again["settings_fingerprint"] == base.manifest["settings_fingerprint"]
    assert not any(v["cached"] for v in again["stages"].values())
    # The verdict where people look: the last own log line, the state, the artifact.
    run, lines, artifacts = verify_flow_run(prefect_api_url, base.run_dir)
    report = artifacts["verify-report"]["data"]
    assert base.manifest["run_id"] in report and "REPRODUCES" in report
    assert run["state"]["type"] == "COMPLETED"
    assert run["state"]["message"].startswith("REPRODUCES (7/7): every stage matches")
    own = [line for line in lines if not line.startswith("Finished in state")]
    finished = [line for line in lines if line.startswith("Finished in state")]
    assert len(finished) == 1, finished  # the flow's; no per-stage echo of the stages' own lines
    assert own[-1].startswith("result: REPRODUCES (7/7): every stage matches"), own[-3:]
    assert artifacts["verify-report"]["description"].startswith("REPRODUCES (7/7) · verify ")
    # The rerun's card has its own key: the latest `run-card` stays the real run's.
    assert "run-card" not in artifacts and "verify-rerun-card" in artifacts


@pytest.mark.slow
def test_verify_stops_early_and_names_the_first_divergent_stage_and_causes(
    tiny_runs: TinyRuns, tmp_path: Path, prefect_api_url: str
) -> None:
    """A recorded run whose split and numpy version were "different": quick, no training."""
    base = tiny_runs.get(**BASE)["base"]
    recorded = tmp_path / "recorded"
    shutil.copytree(base.run_dir, recorded)
    m = json.loads((recorded / "manifest.json").read_text())
    m["stages"]["split"]["fingerprint"] = m["stages"]["split"]["fingerprint"][::-1]
    m["environment"]["packages"]["numpy"] = "1.0.0"
    write_sealed(recorded, m)  # stands for another run: sealed as one

    res = cli("flows.verify", recorded, "--stop-after", "split", "--output-dir", tmp_path / "out", tmp_path=tmp_path, api_url=prefect_api_url)  # fmt: skip
    assert_clean_exit(res, 1)
    rows = table_rows(res.stdout)
    assert list(rows) == ["environment", "data", "augment", "split"]
    assert [rows[s][-1] for s in ("data", "augment")] == ["yes", "yes"]
    assert rows["split"][-1] == "NO"
    assert "first divergent stage: split" in res.stdout
    assert "packages.numpy: 1.0.0 -> " in res.stdout
    run, lines, artifacts = verify_flow_run(prefect_api_url, recorded)
    assert run["state"]["type"] == "FAILED"
    assert re.match(r"DIFFERS \(\d/4\): ", run["state"]["message"]), run["state"]["message"]
    assert any(re.match(r"result: DIFFERS \(\d/4\): ", line) for line in lines), lines
    assert artifacts["verify-report"]["description"].startswith("DIFFERS (")


@pytest.mark.slow
def test_verify_and_compare_reject_bad_input_in_one_line(
    tmp_path: Path, prefect_api_url: str
) -> None:
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "manifest.json").write_text('{"run_id": "x", "sett')
    cases = [
        ("flows.verify", [tmp_path / "missing"], "no such directory"),
        ("flows.verify", [corrupt], "corrupt manifest"),
        ("flows.compare", [tmp_path, corrupt], "not a run directory"),
    ]
    for module, args, expected in cases:
        res = cli(module, *args, tmp_path=tmp_path, api_url=prefect_api_url)
        assert_clean_exit(res, 2)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (
            res.stderr
        )


@pytest.mark.slow
def test_compare_same_settings_other_cwd_output_dir_and_hash_seed(
    tiny_runs: TinyRuns, tmp_path: Path, prefect_api_url: str
) -> None:
    runs = tiny_runs.get(**BASE, **AGAIN)
    a, b = runs["base"], runs["again"]
    res = cli("flows.compare", a.run_dir, b.run_dir, tmp_path=tmp_path, api_url=prefect_api_url)
    assert_clean_exit(res, 0)
    assert "every stage matches (7 of 7)" in res.stdout
    # Shown, but not a cause: the hash seed is not in the environment fingerprint.
    assert "determinism.PYTHONHASHSEED: unset -> 123" in res.stdout
    assert "settings that differ" not in res.stdout  # output_dir is ignored


@pytest.mark.slow
def test_compare_thread_counts_names_the_thread_setting(
    tiny_runs: TinyRuns, tmp_path: Path, prefect_api_url: str
) -> None:
    """Whether 1 and 2 threads give other bytes depends on the CPU (oneDNN blocking). The
    command must report what compare_manifests finds in the pair; and both outcomes are
    checked on the pair itself, made to agree and made to differ, on every CPU."""
    runs = tiny_runs.get(**BASE, **THREADS2)
    a, b = runs["base"], runs["threads2_opdet_off"]
    res = cli("flows.compare", a.run_dir, b.run_dir, tmp_path=tmp_path, api_url=prefect_api_url)
    assert_clean_exit(res, 1)  # the environment differs in both cases
    assert "determinism.intra_op_threads: 1 -> 2" in res.stdout  # settings and environment
    assert res.stdout.count("determinism.intra_op_threads: 1 -> 2") == 2
    assert res.stdout.count("determinism.op_determinism: True -> False") == 2
    fa, fb = a.fingerprints(), b.fingerprints()
    assert [fa[s] for s in UPSTREAM] == [fb[s] for s in UPSTREAM]  # threads never touch data
    assert compare_manifests(a.manifest, b.manifest).headline() in res.stdout

    # The same pair, B's data stages made A's: only the environment differs.
    ma = a.manifest
    agree = copy.deepcopy(b.manifest)
    for s in STAGES:
        if s != "environment":
            agree["stages"][s] = copy.deepcopy(ma["stages"][s])
    same = compare_manifests(ma, agree)
    assert same.first_divergent_stage == "environment" and not same.matches
    assert "every data stage matches, but the environment differs" in same.render()
    assert "settings determinism.intra_op_threads" in same.causes

    # Made to differ from training on, as threads would: train is the first divergent stage.
    differ = copy.deepcopy(agree)
    train = differ["stages"]["train"]
    train["fingerprint"] = "0" * 64
    train["info"]["epoch_fingerprints"] = ["1" * 64 for _ in train["info"]["epoch_fingerprints"]]
    differ["stages"]["evaluate"]["fingerprint"] = "2" * 64
    other = compare_manifests(ma, differ)
    assert (other.first_divergent_stage, other.divergent_epoch) == ("train", 1)
    assert "first divergent stage: train, at epoch 1 of" in other.render()
    assert table_rows(other.render())["evaluate"][-1] == "NO"


@pytest.mark.slow
def test_compare_another_root_seed_lists_every_stage_seed(
    tiny_runs: TinyRuns, tmp_path: Path, prefect_api_url: str
) -> None:
    runs = tiny_runs.get(**BASE, **SEED1)
    a, b = runs["base"], runs["seed1"]
    res = cli("flows.compare", a.run_dir, b.run_dir, tmp_path=tmp_path, api_url=prefect_api_url)
    assert_clean_exit(res, 1)
    assert "seed: 0 -> 1" in res.stdout
    assert "root: 0 -> 1" in res.stdout
    for stage in STAGES:
        old, new = a.manifest["seeds"]["stages"][stage], b.manifest["seeds"]["stages"][stage]
        assert f"stages.{stage}: {old} -> {new}" in res.stdout
    assert "first divergent stage: data" in res.stdout


@pytest.mark.slow
def test_op_determinism_off_is_named_whether_or_not_the_bytes_move(tiny_runs: TinyRuns) -> None:
    """Op determinism changes which kernels run; whether the tiny model's bytes move depends on
    the CPU. Data never moves, and the flag is named as a cause either way."""
    runs = tiny_runs.get(**BASE, **THREADS2)  # 2 threads as well: named apart (above)
    a, b = runs["base"].manifest, runs["threads2_opdet_off"].manifest
    result = compare_manifests(a, b)
    assert result.exit_code == 1
    status = {r.stage: r.status for r in result.stages}
    assert [status[s] for s in UPSTREAM] == ["match"] * 3
    moved = a["stages"]["train"]["fingerprint"] != b["stages"]["train"]["fingerprint"]
    assert (status["train"] == "differs") == moved
    expected_first = "environment" if not moved else result.first_divergent_stage
    assert result.first_divergent_stage == expected_first
    assert result.first_divergent_stage not in UPSTREAM
    flag = ("determinism.op_determinism", True, False)
    assert flag in [(d.key, d.a, d.b) for d in result.settings]
    assert flag in [(d.key, d.a, d.b) for d in result.environment]
    assert "determinism.op_determinism: True -> False" in result.render()


@pytest.mark.slow
def test_pinned_stage_seed_changes_that_stage_and_downstream_only(tiny_runs: TinyRuns) -> None:
    runs = seed1_runs(tiny_runs)  # the same root seed; the model stage's seed pinned in one
    pinned_to = runs["seed1_pinned_model"].manifest["seeds"]["stages"]["model"]
    result = compare_manifests(runs["seed1"].manifest, runs["seed1_pinned_model"].manifest)
    status = {r.stage: r.status for r in result.stages}
    cut = STAGES.index("model")
    assert [status[s] for s in STAGES[:cut]] == ["match"] * cut
    assert [status[s] for s in STAGES[cut:]] == ["differs"] * (len(STAGES) - cut)
    assert result.first_divergent_stage == "model"
    assert result.divergent_epoch == 1  # other initial weights: training differs from epoch 1
    assert [d.key for d in result.seeds] == ["stages.model", "pinned"]
    assert [(d.key, d.b) for d in result.settings] == [("seeds.model", pinned_to)]


def test_verify_never_goes_past_what_the_recorded_run_finished() -> None:
    from seedtrail.cli.check_args import stages_to_verify
    from seedtrail.compare.diff import as_manifest
    from tests.test_compare import make_manifest

    full = as_manifest(make_manifest())
    partial = full.model_copy(
        update={"stages": {k: v for k, v in full.stages.items() if k in STAGES[:4]}}
    )
    assert stages_to_verify(full, None) == STAGES
    assert stages_to_verify(full, "split")[-1] == "split"
    assert stages_to_verify(partial, None)[-1] == "split"
    assert stages_to_verify(partial, "train")[-1] == "split"


@pytest.mark.slow
def test_compare_flow_fails_on_a_difference_and_leaves_a_markdown_artifact(
    prefect_server: None, tiny_runs: TinyRuns, tmp_path: Path
) -> None:
    from flows.compare import compare_flow

    base = tiny_runs.get(**BASE)["base"]
    other = tmp_path / "other"
    shutil.copytree(base.run_dir, other)
    m = json.loads((other / "manifest.json").read_text())
    m["stages"]["evaluate"]["fingerprint"] = "0" * 64
    write_sealed(other, m)  # stands for another run: sealed as one

    same = compare_flow(base.run_dir, base.run_dir, return_state=True)
    assert same.is_completed() and same.result()["exit_code"] == 0
    state = compare_flow(base.run_dir, other, return_state=True)
    assert state.is_failed()
    summary = state.result(raise_on_failure=False)
    assert summary["first_divergent_stage"] == "evaluate"

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["compare-report"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            )
        )
    assert artifact.type == "markdown"
    assert "first divergent stage: evaluate" in artifact.data


@pytest.mark.slow
@pytest.mark.parametrize("module", ["flows.verify", "flows.compare"])
def test_help_mentions_the_exit_codes(module: str, tmp_path: Path) -> None:
    res = run_module(module, ["--help"], cwd=tmp_path, prefect_home=tmp_path / "home")
    assert res.returncode == 0
    assert "Exit 0" in res.stdout and "2: bad input" in res.stdout


@pytest.mark.slow
def test_verify_rejects_recorded_settings_it_cannot_rerun(tmp_path: Path) -> None:
    from seedtrail.cli.check_args import load_recorded
    from seedtrail.core.errors import InputError

    run = tmp_path / "run"
    run.mkdir()
    manifest = {
        "run_id": "r",
        "status": "complete",
        "seeds": {},
        "stages": {},
        "settings": {"seed": -1, "training": {"epochs": 0}},
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError) as err:
        load_recorded(run)
    problems = err.value.problems
    assert len(problems) == 2
    assert all(p.startswith(f"{run}: manifest settings: ") for p in problems)
    assert any("training.epochs" in p for p in problems)
