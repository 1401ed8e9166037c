"""What the Prefect UI shows, as plain functions: the run card and its pictures, the result
line, sweep statistics notes, the settings form's schema, generated run names, clean failures.
(The same against a real server and in a browser: tests/test_serve.py.)
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from seedtrail.core.errors import InputError
from seedtrail.core.plots import save_preview, training_curves
from seedtrail.prefect.deployments import DEPLOYMENTS, sweep_parameters
from seedtrail.prefect.logs import _clean_input_errors, _not_input_error, clean_failure
from seedtrail.prefect.names import is_generated_name
from seedtrail.prefect.workarounds import ENGINE_EXITED
from seedtrail.run.manifest import Manifest, parse_manifest
from seedtrail.run.report import card_description, png_markdown, result_line, run_card
from seedtrail.sweep.plan import ci_note, ci_warnings, describe, stats_table
from settings.model import RunSettings

FIXTURE = Path(__file__).parent / "fixtures" / "manifest_v1.json"
DATA_URI = re.compile(r"!\[([^\]]+)\]\(data:image/png;base64,[A-Za-z0-9+/=]+\)")


def _run_with_pictures(tmp_path: Path, preview_samples: int = 16, size: int = 24) -> Manifest:
    """The fixture run, with the pictures a default run draws (16 previews, 24 px, 10 epochs)."""
    rng = np.random.default_rng(0)
    curve = list(np.linspace(1.2, 0.4, 10))
    training_curves(
        {"loss": curve, "val_loss": curve, "accuracy": curve, "val_accuracy": curve},
        tmp_path / "training_curves.png",
        "seed 1 · 10 epochs",
    )
    images = rng.random((2, preview_samples, size, size, 1)).astype("float32")
    save_preview(images[0], images[1], tmp_path / "augment_preview.png")
    data = json.loads(FIXTURE.read_text())
    data["artifacts"] = {
        **data.get("artifacts", {}),
        "training_curves": "training_curves.png",
        "augment_preview": "augment_preview.png",
    }
    return parse_manifest(data, str(tmp_path), str(tmp_path))


def test_the_run_card_carries_both_pictures_inline_and_stays_small(tmp_path: Path) -> None:
    manifest = _run_with_pictures(tmp_path)
    card = run_card(manifest)
    assert DATA_URI.findall(card) == ["training curves", "augmentation preview"]
    assert len(card.encode()) < 150_000, len(card)  # default run: 16 previews, 10 epochs
    print(f"run card: {len(card.encode()) / 1000:.1f} KB", file=sys.stderr)


def test_a_missing_or_huge_picture_is_named_not_embedded(tmp_path: Path) -> None:
    assert "missing" in png_markdown(tmp_path / "nope.png", "curves")
    (tmp_path / "big.png").write_bytes(b"\x89PNG" + bytes(200))
    line = png_markdown(tmp_path / "big.png", "curves", max_bytes=100)
    assert "too large" in line and "data:" not in line


def test_description_and_result_line_carry_seed_metrics_and_where(tmp_path: Path) -> None:
    manifest = _run_with_pictures(tmp_path)
    m = manifest.metrics
    desc = card_description(manifest)
    assert desc.startswith(f"seed 0 · acc {m.test_accuracy:.4f} · loss {m.test_loss:.4f}")
    assert "macro-F1" in desc and manifest.run_id in desc
    line = result_line(manifest)
    assert line.startswith("result: seed 0 · acc ")
    assert manifest.stages["train"].fingerprint[:16] in line and str(tmp_path) in line


def test_ci95_notes_few_seeds_and_intervals_leaving_the_unit_range() -> None:
    two = describe([0.40, 0.95])  # t(0.975, 1) = 12.7: the interval leaves [0, 1]
    assert two["ci95_low"] < 0 and two["ci95_high"] > 1
    note = ci_note("test_accuracy", two)
    assert "only 2 seeds" in note and "leaves [0, 1]" in note
    assert "leaves" not in ci_note("test_loss", two)  # a loss has no upper bound
    assert ci_note("test_accuracy", describe([0.8, 0.81, 0.8, 0.82, 0.8])) == ""
    assert "needs at least 2" in ci_note("test_accuracy", describe([0.8]))
    stats = {"all": {"test_accuracy": two}}
    assert ci_warnings(stats) == [f"all test_accuracy: {note}"]
    table = stats_table(stats)
    assert note in table and "0.6750" in table  # the mean, 4 decimals


def test_the_form_schema_has_titles_bounds_and_no_null_switches() -> None:
    schema = RunSettings.model_json_schema()
    text = json.dumps(schema)
    assert '{"type": "null"}' not in text  # each prints `Property is type "None"` in the UI
    titles = {d["title"] for d in schema["$defs"].values()}
    assert not any(t.endswith("Settings") for t in titles), titles
    epochs = schema["$defs"]["TrainingSettings"]["properties"]["epochs"]
    assert epochs["description"].endswith("(≥ 1, ≤ 1000)")
    seeds = RunSettings().model_dump(mode="json", exclude_none=True)["seeds"]
    assert seeds == {}  # so deployments never send a null the schema has no room for


def test_a_custom_sweep_computes_its_own_folder() -> None:
    assert "sweep_dir" not in sweep_parameters(RunSettings())
    descriptions = [d.description for d in DEPLOYMENTS]
    assert len(set(descriptions)) == len(descriptions)


@pytest.mark.parametrize(
    ("name", "generated"),
    [
        ("urban-bat", True),
        ("skilled-mongrel", True),
        ("gamma2-tethys", True),  # the UI form's prefilled name
        ("alpha-andromedae-tethys", True),
        (None, True),
        ("train-seed1-e6730d04", False),
        ("split-too-big-1", False),
        ("baseline", False),
        ("my baseline run", False),
    ],
)
def test_only_names_prefect_generated_are_replaced(name: str | None, generated: bool) -> None:
    from prefect.utilities.names import generate_slug

    assert is_generated_name(name) is generated
    assert all(is_generated_name(generate_slug(2)) for _ in range(50))


def _record(msg: str, exc: BaseException) -> logging.LogRecord:
    return logging.LogRecord(
        "prefect.flow_runs", logging.ERROR, __file__, 1, msg, (), (type(exc), exc, None)
    )


def test_bad_input_leaves_no_traceback_in_the_flow_run_logs() -> None:
    assert not _clean_input_errors(_record(ENGINE_EXITED, InputError("split: too big")))
    other = _record("Execution exited", InputError("split: too big"))
    assert _clean_input_errors(other)
    assert other.exc_info is None and other.getMessage() == "Execution exited: split: too big"
    crash = _record(ENGINE_EXITED, RuntimeError("a real bug"))
    assert _clean_input_errors(crash) and crash.exc_info is not None  # bugs keep theirs


def test_the_cli_leaves_out_the_flows_lines_about_a_clean_failure() -> None:
    """The CLI prints `error: <line>` itself; a served run keeps them (no CLI filter there)."""
    message = "model.builder: badbuild:build returned a str, not a keras.Model"
    state = clean_failure(message)
    assert state.message == message
    for line in (f"cannot run: {message}", f"Finished in state Failed('{message}')"):
        record = logging.LogRecord("prefect.flow_runs", logging.ERROR, "", 0, line, (), None)
        assert not _not_input_error(record)
    other = logging.LogRecord("prefect.flow_runs", logging.INFO, "", 0, "result: seed 0", (), None)
    assert _not_input_error(other)


def test_the_train_form_titles_every_parameter_for_people() -> None:
    """Prefect titles a parameter with its name ("data (Optional)" in the form): ours are words."""
    from prefect.utilities.callables import parameter_schema

    from flows.train import train_flow

    schema = parameter_schema(train_flow).model_dump_for_openapi()
    titles = {name: prop.get("title") for name, prop in schema["properties"].items()}
    assert titles["data"] == "Data" and titles["seeds"] == "Seed pins", titles
    assert titles["output_dir"] == "Output folder" and titles["stop_after"] == "Stop after"
    assert all(t and t[0].isupper() and "_" not in t for t in titles.values()), titles
    # the sections' own schemas keep other titles, or pydantic would drop the parameter's
    assert all(d["title"].endswith(" section") for d in schema["definitions"].values())


@pytest.mark.parametrize(
    "module,name", [("flows.sweep", "sweep_flow"), ("flows.verify", "verify_flow")]
)
def test_the_sweep_and_verify_forms_title_every_parameter_for_people(
    module: str, name: str
) -> None:
    import importlib

    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(getattr(importlib.import_module(module), name))
    titles = {n: p.get("title") for n, p in schema.model_dump_for_openapi()["properties"].items()}
    assert all(t and t[0].isupper() and "_" not in t and t != n for n, t in titles.items()), titles


def test_the_sweep_tables_fit_a_page_without_sideways_scrolling() -> None:
    """The UI scrolled the 10-column statistics table sideways: narrow cells, notes below."""
    from seedtrail.sweep.plan import runs_table

    stats = {
        "all": {"test_accuracy": describe([0.40, 0.95]), "test_macro_f1": describe([0.5, 0.6])}
    }
    text = stats_table(stats)
    table = [line for line in text.splitlines() if line.startswith("|")]
    cells = [c.strip() for line in table for c in line.strip("|").split("|")]
    assert len(table[0].strip("|").split("|")) <= 8
    assert max(map(len, cells)) <= 20, max(cells, key=len)
    assert "(1) only 2 seeds: CI95 very wide" in text  # the full note, under the table
    runs = [{"vary": "all", "seed": 0, "status": "complete", "metrics": {"test_accuracy": 0.5},
             "fingerprints": {"train": "ab" * 32}, "run_dir": "/r/20261126-210336-seed0-f707b0-9177"}]  # fmt: skip
    head = runs_table(runs).splitlines()[0]
    assert "| accuracy |" in head and "test_accuracy" not in head
    assert "| …seed0-f707b0-9177 |" in runs_table(runs)  # the run, without its date
