"""A cache entry is trusted only if it proves its result belongs to the stored bytes.

Unit tests call `save_entry`/`load_entry` directly (no Prefect, no TensorFlow);
the flow tests edit real entries the way the issue found them trusted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from seedtrail.core.stage_cache import StageContext, _entry_path, load_entry, lookup, save_entry
from seedtrail.core.stage_result import StageResult
from settings import RunSettings
from tests.conftest import train_in_process
from tests.manifests import write_sealed

FP = "ab" * 32


def _ctx(tmp_path: Path) -> StageContext:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    return StageContext(run_dir=run, store=tmp_path / ".store")


def _saved(tmp_path: Path) -> tuple[StageContext, Path]:
    """An entry with one run file (copied into the store) and one file outside the run."""
    ctx = _ctx(tmp_path)
    (ctx.run_dir / "model.keras").write_bytes(b"weights")
    outside = tmp_path / "arrays.npz"
    outside.write_bytes(b"arrays")
    result = StageResult(
        "train",
        7,
        FP,
        0.5,
        outputs={"model": str(ctx.run_dir / "model.keras"), "arrays": str(outside)},
        info={"epoch_fingerprints": [FP], "final": {"loss": 0.25}},
    )
    save_entry(ctx, "k1", result)
    return ctx, _entry_path(ctx, "train", "k1")


def _edit(path: Path, change: Any) -> None:
    entry = json.loads(path.read_text())
    change(entry)
    path.write_text(json.dumps(entry))


def _flip_hex(fp: str) -> str:
    return ("1" if fp[0] != "1" else "2") + fp[1:]


def test_a_saved_entry_is_a_verified_hit_and_materializes_its_run_files(tmp_path: Path) -> None:
    ctx, _ = _saved(tmp_path)
    new_run = tmp_path / "run2"
    new_run.mkdir()
    hit, why = load_entry(StageContext(run_dir=new_run, store=ctx.store), "train", "k1")
    assert why == "" and hit is not None
    assert hit.fingerprint == FP
    assert (new_run / "model.keras").read_bytes() == b"weights"


def _set_result_fingerprint(e: dict) -> None:
    e["result"]["fingerprint"] = _flip_hex(e["result"]["fingerprint"])


def _set_key(name: str, value: Any) -> Any:
    def change(e: dict) -> None:
        e[name] = value

    return change


def _set_result(name: str, value: Any) -> Any:
    def change(e: dict) -> None:
        e["result"][name] = value

    return change


def _set_file(name: str, value: Any) -> Any:
    def change(e: dict) -> None:
        e["files"]["model"][name] = value

    return change


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_set_result_fingerprint, "seal"),
        (_set_result("info", {"final": {"loss": 0.5}}), "seal"),
        (_set_key("files", []), "files"),
        (_set_key("files", {}), "files"),
        (_set_key("result", [1, 2]), "result"),
        (_set_result("seed", "7"), "result.seed"),
        (_set_result("fingerprint", "not hex"), "seal"),
        (_set_file("run_file", "../../escaped.keras"), "malformed"),
        (_set_file("run_file", "/etc/passwd"), "malformed"),
        (_set_file("sha256", 5), "malformed"),
        (_set_key("seal", None), "seal"),  # an entry from before seals: recomputed once
        (_set_key("key", "other"), "another"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_an_edited_or_malformed_entry_is_a_miss_with_a_reason(
    tmp_path: Path, change: Any, reason: str
) -> None:
    ctx, path = _saved(tmp_path)
    _edit(path, change)
    hit, why = load_entry(ctx, "train", "k1")
    assert hit is None
    assert reason in why
    assert not (tmp_path / "escaped.keras").exists()


@pytest.mark.parametrize("text", ["[]", "5", "null", '{"stage": "train"}', "{", "\x00\xff"])
def test_an_entry_that_is_not_an_entry_is_a_miss(tmp_path: Path, text: str) -> None:
    ctx, path = _saved(tmp_path)
    path.write_text(text, errors="surrogateescape")
    hit, why = load_entry(ctx, "train", "k1")
    assert hit is None and why


def test_a_rejected_entry_is_recomputed_with_a_warning_and_replaced(tmp_path: Path) -> None:
    ctx, path = _saved(tmp_path)
    _edit(path, _set_result_fingerprint)
    warnings: list[str] = []
    true_result = StageResult("train", 7, FP, 0.1, outputs={})

    miss, decision = lookup(ctx, "train", "k1", log=warnings.append)
    assert miss is None and decision["status"] == "miss" and "seal" in decision["reason"]
    assert len(warnings) == 1 and "seal" in warnings[0]
    save_entry(ctx, "k1", true_result)  # what the stage does after recomputing
    hit, why = load_entry(ctx, "train", "k1")  # the recomputed result replaced the entry
    assert why == "" and hit is not None and hit.fingerprint == FP


# ---- the same edits on a real run's entries ------------------------------------------------


def _entry_of(manifest: dict, stage: str) -> Path:
    store = Path(manifest["run_dir"]).parent / ".store"
    return store / "cache" / stage / f"{manifest['stages'][stage]['cache']['key']}.json"


@pytest.mark.slow
def test_a_run_never_trusts_an_edited_entry(prefect_server: None, settings: RunSettings) -> None:
    """Real entries edited as the issue found them trusted, in one run's store (every edit
    and malformation, entry by entry: the tests above): each edited entry is recomputed
    with the true bytes, and the recomputed entry is trusted again."""
    first = train_in_process(settings)
    truth = {name: record["fingerprint"] for name, record in first["stages"].items()}
    rounds = [
        {"data": _set_result_fingerprint, "train": _set_result_fingerprint},
        {"train": _set_key("files", [])},  # its run files unlisted
    ]
    for edits in rounds:
        for stage, change in edits.items():
            _edit(_entry_of(first, stage), change)
        again = train_in_process(settings)
        assert again["status"] == "complete"
        recomputed = {name for name, record in again["stages"].items() if not record["cached"]}
        assert recomputed == {"environment", *edits}, edits  # rejected, recomputed
        # the manifest holds the true bytes
        assert {name: r["fingerprint"] for name, r in again["stages"].items()} == truth
    third = train_in_process(settings)  # the recomputed entries are trusted again
    assert all(r["cached"] for name, r in third["stages"].items() if name != "environment")


@pytest.mark.slow
def test_resume_with_training_from_the_cache_leaves_no_checkpoints(
    prefect_server: None, settings: RunSettings
) -> None:
    import shutil

    done = Path(train_in_process(settings)["run_dir"])
    # An interrupted twin of that run: same settings, stopped in training with a checkpoint.
    twin = done.parent / f"{done.name}-twin"
    shutil.copytree(done, twin)
    manifest = json.loads((twin / "manifest.json").read_text())
    manifest["status"] = "interrupted"
    for stage in ("train", "evaluate"):
        del manifest["stages"][stage]
    write_sealed(twin, manifest)  # stands for another run: sealed as one
    (twin / "checkpoints").mkdir()
    (twin / "checkpoints" / "latest.json").write_text("{}")

    resumed = train_in_process(settings, resume=twin)
    assert resumed["status"] == "complete"
    assert resumed["stages"]["train"]["cached"] is True
    assert not (twin / "checkpoints").exists()
