"""The comparison logic of verify/compare, on hand-made manifests (no TensorFlow, no Prefect)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from seedtrail.compare.diff import NOT_FINGERPRINTED, as_manifest, diff_settings, flatten, read_run
from seedtrail.compare.explanation import compare_manifests
from seedtrail.core.errors import InputError
from settings.model import RunSettings
from settings.seeds import STAGES, SeedPlan
from tests.manifests import consistent


def fp(*parts: object) -> str:
    """A stand-in fingerprint (64 hex chars) that changes with its parts."""
    import hashlib

    return hashlib.sha256(repr(parts).encode()).hexdigest()


def make_manifest(
    settings: RunSettings | None = None, epochs: int = 3, tag: str = ""
) -> dict[str, Any]:
    """A complete manifest shaped like the one flows.train writes; `tag` changes no bytes."""
    s = settings or RunSettings()
    plan = SeedPlan.from_settings(s)
    env = {
        "python": "3.11.7",
        "platform": "Linux-x86_64",
        "cpu_model": "AMD EPYC",
        "cpu_count": 2,
        "devices": ["CPU:/physical_device:CPU:0"],
        "packages": {"tensorflow": "2.21.0", "numpy": "2.4.6"},
        "determinism": {
            "op_determinism": s.determinism.op_determinism,
            "intra_op_threads": s.determinism.intra_op_threads,
            "inter_op_threads": s.determinism.inter_op_threads,
            "PYTHONHASHSEED": "unset",
        },
        "uv_lock_sha256": "ab" * 32,
    }
    stages: dict[str, Any] = {}
    for st in STAGES:
        stages[st] = {"stage": st, "seed": plan[st], "fingerprint": fp(st, plan[st]), "info": {}}
    stages["environment"]["fingerprint"] = fp(env["determinism"], env["packages"])
    stages["environment"]["info"]["environment"] = env
    stages["train"]["info"] = {
        "epoch_fingerprints": [fp("epoch", e, plan["train"]) for e in range(epochs)],
        "final": {"accuracy": 0.5, "loss": 1.0},
    }
    stages["train"]["fingerprint"] = stages["train"]["info"]["epoch_fingerprints"][-1]
    return {
        "run_id": f"run{tag}",
        "status": "complete",
        "settings": s.model_dump(mode="json"),
        "seeds": plan.to_manifest(),
        "stage_versions": dict.fromkeys(STAGES, "1"),
        "stages": stages,
        "environment": env,
        "metrics": {"test_accuracy": 0.5, "test_loss": 1.0, "test_samples": 40},
    }


def diverge(m: dict[str, Any], stage: str, epoch: int | None = None) -> dict[str, Any]:
    """A copy of m whose bytes differ from `stage` on (and, for train, from `epoch` on, 0-based)."""
    m = copy.deepcopy(m)
    for st in STAGES[STAGES.index(stage) :]:
        if st == "environment":
            continue
        m["stages"][st]["fingerprint"] = fp("other", st)
    efs = m["stages"]["train"]["info"]["epoch_fingerprints"]
    start = 0 if stage != "train" or epoch is None else epoch
    for e in range(start, len(efs)):
        efs[e] = fp("other epoch", e)
    m["stages"]["train"]["fingerprint"] = efs[-1]
    return m


def test_flatten_gives_dotted_keys_and_keeps_lists_whole() -> None:
    flat = flatten({"a": 1, "b": {"c": [1, 2], "d": {"e": None}}})
    assert flat == {"a": 1, "b.c": [1, 2], "b.d.e": None}


def test_identical_runs_match_in_every_stage() -> None:
    a, b = make_manifest(), make_manifest(tag="-again")
    result = compare_manifests(a, b)
    assert result.matches and result.exit_code == 0
    assert [r.stage for r in result.stages] == list(STAGES)
    assert result.first_divergent_stage is None
    assert not (result.settings or result.seeds or result.environment or result.code)
    text = result.render()
    assert "every stage matches (7 of 7)" in text and "exit 0" in text


def test_output_dir_is_not_a_difference() -> None:
    a = make_manifest(RunSettings(output_dir=Path("/x")))
    b = make_manifest(RunSettings(output_dir=Path("/y")))
    assert diff_settings(as_manifest(a), as_manifest(b)) == []
    assert compare_manifests(a, b).matches


def test_thread_count_is_named_with_the_first_divergent_stage_and_epoch() -> None:
    a = make_manifest()
    b = make_manifest(RunSettings.model_validate({"determinism": {"intra_op_threads": 2}}))
    b["stages"]["train"]["info"]["epoch_fingerprints"][0] = a["stages"]["train"]["info"][
        "epoch_fingerprints"
    ][0]  # epoch 1 still equal: training diverges at epoch 2
    result = compare_manifests(a, diverge(b, "train", epoch=1))
    assert not result.matches and result.exit_code == 1
    assert result.first_divergent_stage == "train"
    assert result.divergent_epoch == 2
    assert [(d.key, d.a, d.b) for d in result.settings] == [("determinism.intra_op_threads", 1, 2)]
    assert ("determinism.intra_op_threads", 1, 2) in [(d.key, d.a, d.b) for d in result.environment]
    assert "environment determinism.intra_op_threads" in result.causes
    text = result.render()
    assert "first divergent stage: train, at epoch 2 of 3" in text
    assert "determinism.intra_op_threads: 1 -> 2" in text
    statuses = {r.stage: r.status for r in result.stages}
    assert statuses == {
        "environment": "differs",
        "data": "match",
        "augment": "match",
        "split": "match",
        "model": "match",
        "train": "differs",
        "evaluate": "differs",
    }


def test_another_root_seed_lists_the_root_and_every_stage_seed() -> None:
    a, b = make_manifest(), make_manifest(RunSettings(seed=1))
    result = compare_manifests(a, b)
    keys = [d.key for d in result.seeds]
    assert keys == ["root", *(f"stages.{s}" for s in STAGES)]
    assert [(d.key, d.a, d.b) for d in result.settings] == [("seed", 0, 1)]
    assert result.first_divergent_stage == "data"
    assert "later stages inherit the difference" in result.headline()


def test_pinned_stage_diverges_there_and_downstream_only() -> None:
    a = make_manifest()
    b = make_manifest(RunSettings.model_validate({"seeds": {"model": 99}}))
    result = compare_manifests(a, diverge(b, "model"))  # other init: training follows
    assert result.first_divergent_stage == "model"
    assert [d.key for d in result.seeds] == ["stages.model", "pinned"]
    statuses = [r.status for r in result.stages]
    cut = STAGES.index("model")
    assert statuses[:cut] == ["match"] * cut
    assert statuses[cut:] == ["differs"] * (len(STAGES) - cut)


def test_environment_only_difference_fails_but_says_the_bytes_agree() -> None:
    a = make_manifest()
    b = copy.deepcopy(a)
    b["environment"]["packages"]["numpy"] = "2.5.0"
    b["stages"]["environment"]["fingerprint"] = fp("other env")
    result = compare_manifests(a, b)
    assert result.exit_code == 1
    assert result.first_divergent_stage == "environment"
    assert "every data stage matches" in result.headline()
    assert [d.key for d in result.environment] == ["packages.numpy"]


def test_unfingerprinted_environment_keys_are_shown_but_do_not_break_a_match() -> None:
    a = make_manifest()
    b = copy.deepcopy(a)
    b["environment"]["determinism"]["PYTHONHASHSEED"] = "123"
    b["environment"]["cpu_count"] = 16
    result = compare_manifests(a, b)
    assert result.matches
    assert {d.key for d in result.environment} == {"determinism.PYTHONHASHSEED", "cpu_count"}
    assert all(d.note for d in result.environment)
    assert "PYTHONHASHSEED: unset -> 123" in result.render()


def test_not_fingerprinted_keys_mirror_the_environment_stage() -> None:
    from tasks import environment

    expected = set(environment._VOLATILE) | {
        f"determinism.{k}" for k in environment._VOLATILE_DETERMINISM
    }
    assert set(NOT_FINGERPRINTED) == expected


def test_incomplete_run_is_named_and_its_missing_stages_count_as_differences() -> None:
    a = make_manifest()
    b = copy.deepcopy(a)
    b["status"] = "failed"
    for st in ("train", "evaluate"):
        del b["stages"][st]
    result = compare_manifests(a, b)
    assert result.exit_code == 1
    assert result.first_divergent_stage == "train"
    assert [r.status for r in result.stages][-2:] == ["missing", "missing"]
    text = result.render()
    assert "B is incomplete (status 'failed'): recorded up to model" in text
    assert "B has no record of it" in text


@pytest.mark.parametrize("status", ["partial", "running", "interrupted"])
def test_incomplete_runs_never_reproduce_even_when_their_stages_match(status: str) -> None:
    a = make_manifest()
    for st in ("model", "train", "evaluate"):
        del a["stages"][st]
    a["status"] = status
    result = compare_manifests(a, copy.deepcopy(a))
    assert not result.matches and result.exit_code == 1  # exit 1 when a run is incomplete (docs)
    text = result.render()
    assert "every recorded stage matches (4 of 4), but A and B are incomplete" in text
    assert "REPRODUCES" not in text and "result: DIFFERS (exit 1)" in text
    # verify of an incomplete recorded run: limited to its stages, still not a proof
    limited = compare_manifests(a, copy.deepcopy(a), stages=tuple(a["stages"]))
    assert not limited.matches and "A is incomplete" in limited.render()


def test_stages_limit_what_is_compared() -> None:
    a = make_manifest()
    b = diverge(a, "model")
    b["status"] = "partial"  # verify --stop-after split: the rerun stops there on purpose
    result = compare_manifests(a, b, stages=("environment", "data", "augment", "split"))
    assert result.matches
    assert [r.stage for r in result.stages] == ["environment", "data", "augment", "split"]
    text = result.render()
    assert "every stage up to split matches (4 of 4); later stages not checked" in text
    assert "incomplete" not in text


def test_nothing_compared_is_not_a_match() -> None:
    a = make_manifest()
    a["stages"] = {}
    assert not compare_manifests(a, copy.deepcopy(a)).matches


def test_metric_deltas_and_markdown() -> None:
    a = make_manifest()
    b = diverge(a, "train")
    b["metrics"]["test_accuracy"] = 0.75
    result = compare_manifests(a, b, labels=("recorded", "new"), title="verify")
    delta = {m.key: m.delta for m in result.metrics}
    assert delta["test_accuracy"] == pytest.approx(0.25)
    assert delta["test_loss"] == 0
    md = result.render(markdown=True)
    assert md.startswith("# seedtrail verify: DIFFERS")
    assert "| stage | seed | recorded fingerprint | new fingerprint | match |" in md
    assert "test_accuracy: 0.5 -> 0.75 (+0.25)" in md
    summary = result.to_dict()
    json.dumps(summary)  # the flows return it: must be JSON-able
    assert summary["first_divergent_stage"] == "train" and summary["exit_code"] == 1


def test_changed_stage_code_version_is_a_likely_cause() -> None:
    a = make_manifest()
    b = diverge(a, "train")
    b["stage_versions"]["train"] = "2"
    result = compare_manifests(a, b)
    assert "code version of stage train" in result.causes


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such directory"),
        ("", "not a run directory"),
        ('{"run_id": ', "corrupt manifest"),
        ("5", "not a JSON object"),
        ('{"run_id": "x"}', "missing settings, seeds, stages, status"),
        (
            '{"run_id": "x", "settings": {}, "seeds": {"root": 0}, "status": "complete", '
            '"stages": {"data": {"seed": 1}}}',
            "stages.data.fingerprint: Field required",
        ),
    ],
)
def test_bad_run_directories_are_one_line_input_errors(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    run = tmp_path / "run"
    if content is not None:
        run.mkdir()
        if content:
            (run / "manifest.json").write_text(content)
    with pytest.raises(InputError) as err:
        read_run(run)
    (line,) = err.value.problems
    assert expected in line and str(run) in line and "\n" not in line


def test_read_run_records_where_the_run_is(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps(consistent(make_manifest())))
    assert read_run(run).run_dir == str(run)
    assert read_run(run / "manifest.json").run_dir == str(run)


def test_a_stage_declared_not_deterministic_differs_as_expected() -> None:
    a = make_manifest()
    b = copy.deepcopy(a)
    for m in (a, b):
        m["stages"]["augment"]["deterministic"] = False
    b["stages"]["augment"]["fingerprint"] = fp("other draw")
    result = compare_manifests(a, b)
    row = next(r for r in result.stages if r.stage == "augment")
    assert row.status == "expected"
    assert result.matches and result.exit_code == 0
    assert "augment not deterministic: differ as expected" in result.headline()
    assert "expected: not deterministic" in result.render()
