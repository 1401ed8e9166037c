"""Deployments on a real Prefect server: `python -m flows.serve`, custom runs, schema enforcement.

The server is a real `prefect server start` of this module's own, started by the docs' lines;
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from seedtrail.core.errors import InputError
from settings.model import RunSettings
from tests.conftest import ROOT, TINY, TinyRuns, cli_env, run_module

# One pytest worker runs this module's tests together (conftest's ONE_WORKER_MODULES): the
# module's server (`serve_api_url`) and `flows.serve` (`served`) start once.

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


# Prefect's own client retries these (prefect/client/base.py: 429, 502, 503); the server
# answers 503 to "errors clients can retry on" (prefect/server/api/server.py), such as its
# SQLite database locked under load. Seen once in a full suite on 2 busy cores (creating a
# flow run): the test retries as Prefect's client does.
RETRIED = (429, 502, 503)


def _api(url: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    status, payload = _api_once(url, path, body)
    for delay_s in (1, 2, 3):
        if status not in RETRIED:
            break
        time.sleep(delay_s)
        status, payload = _api_once(url, path, body)
    return status, payload


def _api_once(url: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
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
    started: dict[tuple[Any, ...], str] = field(default_factory=dict)

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

    def start(
        self, deployment: str, *params: str, name: str | None = None, cli: bool = False
    ) -> str:
        """Start a deployment run once per module (same arguments: the same run); its id.

        `cli`: with `prefect deployment run`, as from a terminal; else through the API, as
        the UI's form does (a `prefect` command is ~2 CPU s of the suite)."""
        key = (deployment, params, name)
        if key not in self.started:
            if cli:
                args = [a for p in params for a in ("--param", p)]
                args += ["--flow-run-name", name] if name else []
                res = self.prefect("deployment", "run", deployment, *args)
                assert res.returncode == 0, res.stdout + res.stderr
                self.started[key] = _flow_run_id(res.stdout)
            else:
                flow, _, deployment_name = deployment.partition("/")
                status, found = _api(self.api_url, f"/deployments/name/{flow}/{deployment_name}")
                assert status == 200, found
                body: dict[str, Any] = {"parameters": dict(_param(p) for p in params)}
                body |= {"name": name} if name else {}
                status, run = _api(
                    self.api_url, f"/deployments/{found['id']}/create_flow_run", body
                )
                assert status == 201, run
                self.started[key] = run["id"]
        return self.started[key]

    def flow_run_logs(
        self, flow_run_id: str, until: str = "Finished in state", timeout: float = 60
    ) -> list[dict[str, Any]]:
        """The run's logs, once a line starting with `until` arrived (logs reach the API in
        batches, after the state)."""
        deadline = time.monotonic() + timeout
        while True:
            status, logs = _api(
                self.api_url,
                "/logs/filter",
                {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "TIMESTAMP_ASC"},
            )
            assert status == 200, logs
            if any(log["message"].startswith(until) for log in logs):
                return logs
            assert time.monotonic() < deadline, [log["message"] for log in logs]
            time.sleep(0.5)

    def artifact(self, flow_run_id: str, key: str) -> dict[str, Any]:
        status, artifacts = _api(
            self.api_url,
            "/artifacts/filter",
            {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}},
        )
        assert status == 200, artifacts
        (artifact,) = [a for a in artifacts if a["key"] == key]
        return artifact

    def deployment_runs(self, deployment_id: str) -> set[str]:
        status, runs = _api(
            self.api_url,
            "/flow_runs/filter",
            {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}},
        )
        assert status == 200, runs
        return {r["id"] for r in runs}

    def wait_for_name(self, flow_run_id: str, prefix: str, timeout: float = 120) -> dict:
        """The flow run once its name starts with `prefix` (set when it starts running)."""
        deadline = time.monotonic() + timeout
        while True:
            _, run = _api(self.api_url, f"/flow_runs/{flow_run_id}")
            if run["name"].startswith(prefix):
                return run
            assert time.monotonic() < deadline, (run["name"], run["state_type"], self.logs())
            time.sleep(0.5)

    def logs(self) -> str:
        return self.log.read_text()[-6000:]

    def run_dirs(self) -> list[Path]:
        return sorted(p.parent for p in self.output_dir.glob("*/manifest.json"))


DOCS = ROOT / "docs" / "deployment.md"
DOC_PORT = "4322"  # the port the docs use as their example


def docs_server_lines() -> tuple[str, str]:
    """The server command and the `export PREFECT_API_URL=...` line of "A server on any port"."""
    section = DOCS.read_text().split("## A server on any port", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    block = block.replace("\\\n", " ")  # a command continued on the next line
    lines = [" ".join(line.split("  #")[0].split()) for line in block.splitlines()]
    (server,) = [line for line in lines if "prefect server start" in line]
    (export,) = [line for line in lines if line.startswith("export PREFECT_API_URL=")]
    return server, export


@pytest.fixture(scope="module")
def serve_api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of this module's own, started by the docs' own lines ("A server on any port",
    docs/deployment.md) as they are written, on a free port in place of theirs: the served
    runs and the browser's clicks use it, and the browser test checks that every API call
    the UI makes reaches this port (the lines' point). Not the session's server: the
    browser's clicks and the served runs then wait on no other worker's runs (on it, shared
    by three busy workers, the UI's submitted form once did not navigate within 30 s)."""
    import os
    import signal

    from tests.conftest import _free_port, _wait_healthy

    server, export = docs_server_lines()
    assert f"--port {DOC_PORT}" in server, server
    port = str(_free_port())  # the docs' port, made free: the lines say the port each time
    server, export = server.replace(DOC_PORT, port), export.replace(DOC_PORT, port)
    # `uv run X` as written; the test's venv is the project's environment
    shell = 'uv() { [ "$1" = run ] && shift; "$@"; }; '
    home = tmp_path_factory.mktemp("serve-server")
    env = cli_env(home / "home", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    api = subprocess.run(
        ["bash", "-c", f'{export}; printf %s "$PREFECT_API_URL"'],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert api == f"http://127.0.0.1:{port}/api"
    log = home / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", "-c", shell + server], env=env, cwd=home,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        _wait_healthy(api, proc.pid, log, timeout=180)
        yield api
    finally:  # the shell and the server it started: their own process group
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def served(serve_api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`python -m flows.serve` on the tiny configuration, until the module's tests are done."""
    home = tmp_path_factory.mktemp("serve")
    out = home / "runs"
    log = home / "serve.log"
    with open(log, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.serve", "--no-schedule", *TINY, "--output-dir", str(out)],
            cwd=home,
            env=cli_env(home / "home", PREFECT_API_URL=serve_api_url),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        served = Served(serve_api_url, out, home, log)
        try:
            deadline = time.monotonic() + 120
            # flows.serve registers its deployments one after another: wait for all of them.
            for name in ("train", "sweep", "verify"):
                while _api(serve_api_url, f"/deployments/name/{name}/seedtrail")[0] != 200:
                    assert proc.poll() is None, f"flows.serve exited:\n{served.logs()}"
                    assert time.monotonic() < deadline, (
                        f"deployment {name}/seedtrail not registered:\n{served.logs()}"
                    )
                    time.sleep(0.5)
            yield served
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _param(assignment: str) -> tuple[str, Any]:
    """`key=value` as `prefect deployment run --param` reads it: JSON if it parses, else text."""
    key, _, value = assignment.partition("=")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _flow_run_id(output: str) -> str:
    m = re.search(r"UUID: ([0-9a-f-]{36})", output)
    assert m, output
    return m.group(1)


@pytest.mark.slow
def test_custom_run_with_another_seed_matches_a_local_run(
    served: Served, tiny_runs: TinyRuns
) -> None:
    run_id = served.start("train/seedtrail", "seed=1", cli=True)  # from a terminal
    # The same settings in `python -m flows.train`, in its own process (meanwhile the served run goes on).
    local = tiny_runs.get(seed1=("--seed", "1"))["seed1"]
    run = served.wait(run_id)
    assert run["state_type"] == "COMPLETED", served.logs()
    assert run["name"].startswith("train-seed1-"), run["name"]
    assert "seed:1" in run["tags"]

    (run_dir,) = [d for d in served.run_dirs() if "-seed1-" in d.name]
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
    card = cards[0]["data"]
    assert manifest["run_id"] in card
    # the pictures travel with the card, small enough for a page
    assert card.count("](data:image/png;base64,") == 2, card[:2000]
    assert len(card) < 150_000, len(card)
    accuracy = f"{manifest['metrics']['test_accuracy']:.4f}"
    assert cards[0]["description"].startswith("seed 1 · acc " + accuracy)
    # the flow run's last line says where the result is
    lines = [log["message"] for log in served.flow_run_logs(run_id)]
    (result,) = [line for line in lines if line.startswith("result: ")]
    assert accuracy in result and "macro-F1" in result and str(run_dir) in result
    assert manifest["stages"]["train"]["fingerprint"][:16] in result
    # one "Finished in state Completed()" (the flow's), not one per stage
    assert sum(line.startswith("Finished in state Completed") for line in lines) == 1, lines
    # every epoch's metrics are in the flow run's logs (the UI), not only on a terminal
    history = json.loads((run_dir / "history.json").read_text())
    epochs = [line for line in lines if line.startswith("train: epoch ")]
    assert [line.split(" · ")[0] for line in epochs] == ["train: epoch 1/2", "train: epoch 2/2"]
    assert f"val_loss {history['val_loss'][-1]:.4f}" in epochs[-1], epochs


@pytest.mark.slow
def test_a_custom_run_can_bring_its_own_builder_and_image_folder(
    served: Served, tmp_path: Path
) -> None:
    from examples.make_images import write_dataset

    images = tmp_path / "images"
    write_dataset(images, per_class=10, size=12)
    model = {"builder": "examples.model:build_plain", "options": {"units": 8}}
    data = {"kind": "images", "path": str(images), "image_size": 12}
    # the form's sections as the UI sends them
    run = served.wait(
        served.start("train/seedtrail", f"model={json.dumps(model)}", f"data={json.dumps(data)}")
    )
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

    # The server's check names the first bad field only (Prefect's own message). The form's
    # "Validate parameters" box off (enforce_parameter_schema false): the run's own check
    # ends it at once, naming every bad field in its state message, and writes nothing.
    status, run = _api(
        served.api_url,
        f"/deployments/{deployment['id']}/create_flow_run",
        {"parameters": {"seed": -5, "data": {"n_samples": 10}, "training": {"epochs": 0}},
         "enforce_parameter_schema": False, "name": "three-bad-fields"},
    )  # fmt: skip
    assert status == 201, run
    ended = served.wait(run["id"])
    assert ended["state_type"] == "FAILED"
    message = ended["state"]["message"]
    for field_name in ("seed: ", "data.n_samples: ", "training.epochs: "):
        assert field_name in message, message
    assert "Traceback" not in message and "\n" not in message
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


def test_a_schedule_names_its_time_zone_in_its_slug_and_its_deployment_tags() -> None:
    """The UI's badge says "03:00 AM" and lists upcoming runs in the browser's zone."""
    from flows.serve import build_deployments, parse_args, schedules_for

    opts, _, _ = parse_args(["--timezone", "Europe/Berlin", "--sweep-interval", "3600"])
    schedules = {name: schedules_for(name, opts) for name in ("train", "sweep", "verify")}
    assert [s.slug for s in schedules["train"]] == ["train-europe-berlin"]
    assert [(s.slug, s.timezone) for s in schedules["sweep"]] == [
        ("sweep-europe-berlin", "Europe/Berlin")
    ]
    deployments = {d.flow_name: d for d in build_deployments(schedules, RunSettings(), opts)}
    assert "tz:Europe/Berlin" in deployments["train"].tags
    assert [s.slug for s in deployments["train"].schedules] == ["train-europe-berlin"]
    assert not any(t.startswith("tz:") for t in deployments["verify"].tags)  # no schedule


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


SPLIT_TOO_BIG = 'split={"test_size": 0.5, "val_size": 0.45}'
SPLIT_REASON = "split.test_size + split.val_size must be below 0.9 (got 0.5 + 0.45)"


@pytest.mark.slow
def test_a_run_failing_at_start_says_why_in_one_line_and_keeps_its_typed_name(
    served: Served,
) -> None:
    run_id = served.start("train/seedtrail", SPLIT_TOO_BIG, name="split-too-big-1")
    run = served.wait(run_id)
    assert run["state_type"] == "FAILED"
    assert run["name"] == "split-too-big-1"  # typed in the form: kept
    message = run["state"]["message"]
    assert SPLIT_REASON in message and "\n" not in message and "Error" not in message
    logs = served.flow_run_logs(run_id)
    text = "\n".join(log["message"] for log in logs)
    assert "Traceback" not in text and "unexpected exception" not in text, text
    assert [log["message"] for log in logs if log["level"] >= 40] == [f"cannot run: {message}"]


@pytest.mark.slow
def test_a_served_sweep_runs_each_seed_in_its_own_process_one_after_another(
    served: Served, tiny_runs: TinyRuns
) -> None:
    run_id = served.start("sweep/seedtrail", "seeds=[0, 1]")
    singles = tiny_runs.get(base=(), seed1=("--seed", "1"))  # meanwhile, as plain CLI runs
    run = served.wait(run_id)
    assert run["state_type"] == "COMPLETED", served.logs()
    # The folder the sweep computed from its own base and vary, not one fixed at serve time.
    (summary_file,) = served.output_dir.glob("sweep-all-*/summary.json")
    runs = sorted(json.loads(summary_file.read_text())["runs"], key=lambda r: r["seed"])
    assert [r["status"] for r in runs] == ["complete", "complete"]
    first, second = sorted((r["process"] for r in runs), key=lambda p: p["started"])
    assert first["pid"] != second["pid"], runs  # a process each
    assert first["finished"] <= second["started"], runs  # never at the same time
    for r, single in zip(runs, (singles["base"], singles["seed1"]), strict=True):
        assert r["fingerprints"] == single.fingerprints(), r["seed"]

    summary = served.artifact(run_id, "sweep-summary")
    assert "](data:image/png;base64," in summary["data"]
    assert "only 2 seeds: CI95 very wide" in summary["data"]
    sweep_lines = [log["message"] for log in served.flow_run_logs(run_id)]
    for seed in (0, 1):
        assert any(
            line.startswith(f"all/seed{seed}: complete · seed {seed} · acc ")
            for line in sweep_lines
        )


# ---- the UI in a browser ------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _chromium() -> str:
    """The system Chromium (Playwright's own download needs a network this project lacks)."""
    import os
    import shutil

    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip("browser test: the playwright package is missing (uv sync --frozen)")
    for candidate in (os.environ.get("SEEDTRAIL_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (path := shutil.which(candidate)):
            return path
    pytest.skip(
        "browser test: no Chromium found (apt-get install chromium, or set SEEDTRAIL_CHROMIUM)"
    )


@pytest.mark.slow
def test_the_ui_shows_the_run_card_the_form_sections_and_a_failure_reason(
    served: Served, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import os

    from playwright.sync_api import expect, sync_playwright

    chromium = _chromium()
    shots = Path(os.environ.get("SEEDTRAIL_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    shots.mkdir(parents=True, exist_ok=True)
    done = served.wait(served.start("train/seedtrail", "seed=1", cli=True))
    failed = served.wait(served.start("train/seedtrail", SPLIT_TOO_BIG, name="split-too-big-1"))
    card = served.artifact(done["id"], "run-card")
    ui = served.api_url.removesuffix("/api")
    _, train = _api(served.api_url, "/deployments/name/train/seedtrail")

    with sync_playwright() as p:
        # Playwright gives every launch a fresh temporary profile (--user-data-dir).
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            calls: list[str] = []  # the API calls of every page below
            page.on("request", lambda r: calls.append(r.url) if "/api/" in r.url else None)
            page.set_default_timeout(30_000)
            expect.set_options(
                timeout=30_000
            )  # expect()'s own default is 5 s: too short under load

            # A completed run's card: both pictures drawn, the metrics in words.
            page.goto(f"{ui}/artifacts/artifact/{card['id']}")
            for alt in ("training curves", "augmentation preview"):
                img = page.locator(f'img[alt="{alt}"]')
                expect(img).to_be_visible()
                img.scroll_into_view_if_needed()
                page.wait_for_function(
                    "img => img.complete && img.naturalWidth > 0", arg=img.element_handle()
                )
            expect(page.get_by_text("test accuracy").first).to_be_visible()
            page.screenshot(path=shots / "run-card.png", full_page=True)
            body = page.inner_text("body")
            assert "Can't connect to Server API" not in body, body[:500]
            assert card["description"] in body
            assert f"seedtrail run {Path(card['description'].split(' · ')[-1])}" in body

            # The custom-run form: the settings sections, described, no null switches.
            page.goto(f"{ui}/deployments/deployment/{train['id']}/run")
            expect(page.get_by_text("Passes over the training split.").first).to_be_attached()
            page.screenshot(path=shots / "custom-run-form.png", full_page=True)
            form = page.inner_text("body")
            for description in ("Data source.", "Augmentation.", "Data split.",
                                "Model architecture.", "Training.", "Determinism and threads.",
                                "Per-stage seed overrides."):  # fmt: skip
                assert description in form, description
            lines = form.splitlines()
            nulls = [lines[i - 3 : i + 1] for i, x in enumerate(lines) if "Property is type" in x]
            assert not nulls, nulls
            assert "TrainingSettings" not in form
            # sections titled for people, not raw keys ("data (Optional)")
            labels = {line.strip() for line in lines}
            assert {"Data (Optional)", "Seed pins (Optional)", "Stop after (Optional)"} <= labels
            assert not {f"{key} (Optional)" for key in RunSettings.model_fields} & labels
            # Submitted as prefilled: the server takes the form's values, and the name the
            # form generated gives way to the seed's.
            known = served.deployment_runs(train["id"])
            page.get_by_role("button", name="Submit").click()
            page.wait_for_url(re.compile(r".*tab=Runs"))  # the deployment's runs: accepted
            (new_id,) = served.deployment_runs(train["id"]) - known
            submitted = served.wait_for_name(new_id, "train-seed0-")

            # A run that failed at start: its one-line reason, no traceback.
            page.goto(f"{ui}/runs/flow-run/{failed['id']}")
            expect(page.get_by_text(SPLIT_REASON).first).to_be_visible()
            page.screenshot(path=shots / "failed-run.png", full_page=True)
            assert "Traceback" not in page.inner_text("body")
        finally:
            browser.close()
    # The server runs on a port of its own, started by the docs' lines (`serve_api_url`):
    # the UI's every call reaches that port's API, none the default port's.
    assert calls, "the UI made no API call"
    elsewhere = [url for url in calls if not url.startswith(served.api_url)]
    assert not elsewhere, elsewhere[:5]  # without PREFECT_UI_API_URL: http://127.0.0.1:4200/api
    served.wait(submitted["id"])  # not left running when the module's server stops
    print(f"screenshots: {shots}")
