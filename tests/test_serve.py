"""Deployments on a real Prefect server: `python -m flows.serve`, custom runs, schema enforcement.

The server is the session's real `prefect server start` (conftest `prefect_api_url`);
`python -m flows.serve` runs as a subprocess against it with the tiny configuration
as its default parameters, and runs are triggered with the `prefect` CLI, as a user would.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from seedtrail.errors import InputError
from settings.model import RunSettings
from tests.conftest import ROOT, TINY, TinyRuns, cli_env, run_module

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _api(url: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{url}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


@dataclass
class Served:
    api_url: str
    output_dir: Path
    home: Path
    log: Path

    def prefect(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The `prefect` CLI against the test server."""
        return subprocess.run(
            [sys.executable, "-m", "prefect", *args],
            cwd=self.home,
            env=cli_env(self.home, PREFECT_API_URL=self.api_url, COLUMNS="250"),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def wait(self, flow_run_id: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            _, run = _api(self.api_url, f"/flow_runs/{flow_run_id}")
            if run["state_type"] in TERMINAL:
                return run
            assert time.monotonic() < deadline, (
                f"flow run still {run['state_type']}:\n{self.logs()}"
            )
            time.sleep(1)

    def logs(self) -> str:
        return self.log.read_text()[-6000:]

    def run_dirs(self) -> list[Path]:
        return sorted(p.parent for p in self.output_dir.glob("*/manifest.json"))


@pytest.fixture(scope="module")
def served(prefect_api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`python -m flows.serve` on the tiny configuration, until the module's tests are done."""
    home = tmp_path_factory.mktemp("serve")
    out = home / "runs"
    log = home / "serve.log"
    with open(log, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.serve", "--no-schedule", *TINY, "--output-dir", str(out)],
            cwd=home,
            env=cli_env(home / "home", PREFECT_API_URL=prefect_api_url),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        served = Served(prefect_api_url, out, home, log)
        try:
            deadline = time.monotonic() + 120
            while _api(prefect_api_url, "/deployments/name/train/seedtrail")[0] != 200:
                assert proc.poll() is None, f"flows.serve exited:\n{served.logs()}"
                assert time.monotonic() < deadline, f"no deployment registered:\n{served.logs()}"
                time.sleep(0.5)
            yield served
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _flow_run_id(output: str) -> str:
    m = re.search(r"UUID: ([0-9a-f-]{36})", output)
    assert m, output
    return m.group(1)


@pytest.mark.slow
def test_custom_run_with_another_seed_matches_a_local_run(
    served: Served, tiny_runs: TinyRuns
) -> None:
    started = served.prefect("deployment", "run", "train/seedtrail", "--param", "seed=1")
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = _flow_run_id(started.stdout)
    # The same settings in `python -m flows.train`, in its own process (meanwhile the served run goes on).
    local = tiny_runs.get(seed1=("--seed", "1"))["seed1"]
    run = served.wait(run_id)
    assert run["state_type"] == "COMPLETED", served.logs()
    assert run["name"].startswith("train-seed1-"), run["name"]
    assert "seed:1" in run["tags"]

    (run_dir,) = served.run_dirs()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    # Only the seed was sent: every other setting is the deployment's (the tiny configuration).
    assert {**manifest["settings"], "output_dir": None} == {
        **local.manifest["settings"],
        "output_dir": None,
    }
    assert manifest["status"] == "complete"
    fps = {k: v["fingerprint"] for k, v in manifest["stages"].items()}
    assert fps == local.fingerprints()
    assert manifest["metrics"] == local.manifest["metrics"]

    status, artifacts = _api(
        served.api_url, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}}
    )
    assert status == 200
    cards = [a for a in artifacts if a["key"] == "run-card"]
    assert cards and cards[0]["type"] == "markdown"
    assert manifest["run_id"] in cards[0]["data"]


@pytest.mark.slow
def test_a_custom_run_can_bring_its_own_builder_and_image_folder(
    served: Served, tmp_path: Path
) -> None:
    from examples.make_images import write_dataset

    images = tmp_path / "images"
    write_dataset(images, per_class=10, size=12)
    model = {"builder": "examples.model:build_plain", "options": {"units": 8}}
    data = {"kind": "images", "path": str(images), "image_size": 12}
    started = served.prefect(
        "deployment", "run", "train/seedtrail",
        "--param", f"model={json.dumps(model)}", "--param", f"data={json.dumps(data)}",
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    run = served.wait(_flow_run_id(started.stdout))
    assert run["state_type"] == "COMPLETED", served.logs()
    manifests = [json.loads((d / "manifest.json").read_text()) for d in served.run_dirs()]
    (mine,) = [m for m in manifests if m["settings"]["model"]["builder"]]
    assert mine["status"] == "complete"
    assert set(mine["user_inputs"]) == {"model.builder", "data.path"}
    assert mine["user_inputs"]["data.path"]["files"] == 30
    assert mine["stages"]["model"]["info"]["builder"] == "examples.model:build_plain"


@pytest.mark.slow
def test_invalid_parameters_are_refused_by_the_server(served: Served) -> None:
    before = served.run_dirs()
    refused = served.prefect(
        "deployment", "run", "train/seedtrail", "--param", 'training={"epochs": -1}'
    )
    assert refused.returncode != 0
    text = " ".join((refused.stdout + refused.stderr).split())
    assert "training.epochs" in text, text
    assert "Created flow run" not in text

    # Straight through the API as well (what the UI does): refused, naming the field.
    status, deployment = _api(served.api_url, "/deployments/name/train/seedtrail")
    assert status == 200
    status, body = _api(
        served.api_url,
        f"/deployments/{deployment['id']}/create_flow_run",
        {"parameters": {"seed": -5}},
    )
    assert status == 409, body
    assert "'seed'" in body["detail"], body
    assert served.run_dirs() == before


@pytest.mark.slow
def test_every_setting_is_a_deployment_parameter_with_its_bounds(served: Served) -> None:
    _, deployment = _api(served.api_url, "/deployments/name/train/seedtrail")
    assert deployment["enforce_parameter_schema"] is True
    schema = deployment["parameter_openapi_schema"]
    # every setting, then the run options (never change what is computed)
    assert list(schema["properties"]) == [
        *RunSettings.model_fields,
        "stop_after",
        "use_cache",
        "resume",
    ]
    for name, info in RunSettings.model_fields.items():
        assert schema["properties"][name]["description"] == info.description
    assert schema["properties"]["seed"]["minimum"] == 0
    expected = RunSettings.model_json_schema()["$defs"]
    for name, definition in expected.items():
        assert schema["definitions"][name]["properties"] == definition["properties"], name
    # choices are enums (selects in the UI form)
    assert schema["definitions"]["TrainingSettings"]["properties"]["optimizer"]["enum"] == [
        "adam",
        "sgd",
    ]
    # the deployment's defaults are the served settings: the tiny configuration
    assert deployment["parameters"]["training"]["epochs"] == 2
    assert deployment["parameters"]["model"]["conv_filters"] == [4, 8]
    assert deployment["schedules"] == []  # --no-schedule
    for flow_name in ("sweep", "verify"):
        assert _api(served.api_url, f"/deployments/name/{flow_name}/seedtrail")[0] == 200


@pytest.mark.slow
def test_serve_without_a_server_says_how_to_start_one(tmp_path: Path) -> None:
    res = run_module("flows.serve", [], cwd=tmp_path, prefect_home=tmp_path / "home")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "no Prefect server" in lines[0] and "prefect server start" in lines[0]
    assert "Traceback" not in res.stdout + res.stderr


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--train-cron", "not a cron"], "--train-cron"),
        (["--train-interval", "0"], "--train-interval"),
        (["--train-cron", "0 3 * * *", "--train-interval", "60"], "--train-cron"),
        (["--timezone", "Mars/Olympus"], "--timezone"),
    ],
)
def test_bad_schedule_flags_name_the_flag(args: list[str], field: str) -> None:
    from flows.serve import DEFAULT_CRON, parse_args, schedules_for

    with pytest.raises(InputError) as err:
        opts, _, _ = parse_args(args)
        for name in DEFAULT_CRON:
            schedules_for(name, opts)
    (line,) = err.value.problems
    assert line.startswith(field), line


def test_schedules_default_set_and_off() -> None:
    from flows.serve import DEFAULT_CRON, parse_args, schedules_for

    opts, rest, _ = parse_args(["--train-cron", "*/5 * * * *", "--seed", "3"])
    assert rest == ["--seed", "3"]  # settings flags are left for load_settings
    assert [s.cron for s in schedules_for("train", opts)] == ["*/5 * * * *"]
    opts, _, _ = parse_args([])
    assert [s.cron for s in schedules_for("train", opts)] == [DEFAULT_CRON["train"]]
    opts, _, _ = parse_args(["--train-cron", "off", "--sweep-interval", "3600"])
    assert schedules_for("train", opts) == []
    (interval,) = schedules_for("sweep", opts)
    assert interval.interval.total_seconds() == 3600
    opts, _, _ = parse_args(["--no-schedule"])
    assert all(schedules_for(name, opts) == [] for name in DEFAULT_CRON)


def test_prefect_yaml_deployments_load_and_their_parameters_fit_the_schema() -> None:
    """The worker path (`prefect deploy --all`): entrypoints, names, default parameters."""
    import yaml
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools.validation import validate

    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = set()
    for d in config["deployments"]:
        if not (ROOT / d["entrypoint"].split(":")[0]).exists():
            continue  # verify is optional, as in flows.serve; train and sweep are checked below
        f = load_flow_from_entrypoint(str(ROOT / d["entrypoint"]))
        names.add(f"{f.name}/{d['name']}")
        assert d["enforce_parameter_schema"] is True
        schema = parameter_schema(f).model_dump_for_openapi()
        # required parameters without a default (verify: run_dir) come with each run
        validate(d["parameters"], schema, raise_on_error=True, ignore_required=True)
        assert d["work_pool"]["name"] == config["definitions"]["work_pool"]["name"]
    assert {"train/seedtrail", "sweep/seedtrail"} <= names
