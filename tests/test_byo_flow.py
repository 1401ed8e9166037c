"""The user's own model, image folder, loader and pipeline keep every guarantee, end to end.

Subprocess runs (`tiny_runs`, one process each) are compared with in-process runs of the
same settings (another process), verify, a sweep, and a resume after kill -9. Edits to a
copy of the example project show that a cached rerun hits and a code or file edit misses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seedtrail.core.errors import InputError
from settings.model import RunSettings
from tests.conftest import (
    TinyRuns,
    cli_env,
    run_module,
    train_in_process,
)

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "examples" / "augment.yaml"
TINY_BYO = {  # small enough for seconds, 6 epochs so a kill lands inside training
    "split": {"test_size": 0.25, "val_size": 0.25},
    "training": {"epochs": 6},
    "augment": {"preview_samples": 4, "pipeline": str(PIPELINE)},
}


def images_settings(images: Path, builder: str = "examples.model:build", **extra) -> dict:
    return {
        **TINY_BYO,
        "data": {"kind": "images", "path": str(images), "image_size": 12},
        "model": {"builder": builder, "options": {"filters": [4]}},
        **extra,
    }


LOADER = {
    **TINY_BYO,
    "data": {"kind": "python", "loader": "examples.loader:digits"},
    "model": {"builder": "examples.model:build_plain", "options": {"units": 8}},
    "training": {"epochs": 2},
}


def flags(settings: dict) -> list[str]:
    """Settings as command-line flags (nested sections, JSON for the options object)."""
    out = []
    for section, values in settings.items():
        for name, value in values.items():
            flag = f"--{section}.{name.replace('_', '-')}"
            out += [flag, json.dumps(value) if isinstance(value, dict) else str(value)]
    return out


def single_runs(tiny_runs: TinyRuns, images: Path) -> dict:
    return tiny_runs.get(
        byo_images=tuple(flags(images_settings(images))), byo_loader=tuple(flags(LOADER))
    )


def _stage_fps(manifest: dict) -> dict[str, str]:
    return {k: v["fingerprint"] for k, v in manifest["stages"].items() if k != "environment"}


def _cached(manifest: dict) -> dict[str, bool]:
    return {k: v["cached"] for k, v in manifest["stages"].items() if k != "environment"}


def _without_listing(record: dict) -> dict:
    return {k: {f: v for f, v in r.items() if f != "listing"} for k, r in record.items()}


@pytest.mark.slow
def test_same_bytes_in_another_process_verify_reproduces_and_a_cached_rerun_hits(
    tiny_runs: TinyRuns, example_images: Path, prefect_server: None, tmp_path: Path
) -> None:
    from flows.verify import verify_flow

    runs = single_runs(tiny_runs, example_images)
    for name, spec in (("byo_images", images_settings(example_images)), ("byo_loader", LOADER)):
        settings = RunSettings.model_validate({**spec, "output_dir": str(tmp_path / name)})
        here = train_in_process(settings)
        there = runs[name].manifest
        assert _stage_fps(here) == _stage_fps(there), name
        # `listing` points into each run's own store (where compare reads the file list): the
        # identity of the user's inputs is everything else
        assert _without_listing(there["user_inputs"]) == _without_listing(here["user_inputs"])
        if name != "byo_images":
            continue  # the images run has every kind of user input: it is the one rerun
        again = train_in_process(settings)
        assert all(_cached(again).values()), _cached(again)
        assert (Path(again["run_dir"]) / "tensorboard" / "train").is_dir()
        verified = verify_flow(runs[name].run_dir, output_dir=str(tmp_path / f"verify-{name}"))
        assert verified["matches"], verified["report"]
    record = runs["byo_images"].manifest["user_inputs"]
    assert set(record) == {"model.builder", "data.path", "augment.pipeline"}
    assert record["model.builder"]["modules"].keys() == {
        "examples",
        "examples.blocks",
        "examples.model",
    }
    assert runs["byo_images"].manifest["stages"]["data"]["info"]["class_names"] == [
        "circle",
        "square",
        "triangle",
    ]


@pytest.mark.slow
def test_edits_of_code_images_or_pipeline_miss_the_cache_and_compare_names_them(
    example_images: Path, prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seedtrail.compare.explanation import compare_manifests

    project = tmp_path / "proj" / "byoproj"
    shutil.copytree(ROOT / "examples", project, ignore=shutil.ignore_patterns("__pycache__"))
    for f in project.glob("*.py"):
        f.write_text(f.read_text().replace("from examples.", "from byoproj."))
    monkeypatch.syspath_prepend(str(project.parent))
    images = tmp_path / "images"
    shutil.copytree(example_images, images)
    pipeline = tmp_path / "aug.yaml"
    shutil.copyfile(PIPELINE, pipeline)
    spec = images_settings(images, builder="byoproj.model:build", output_dir=str(tmp_path / "r"))
    spec["augment"] = {**spec["augment"], "pipeline": str(pipeline)}
    spec["training"] = {"epochs": 1}
    settings = RunSettings.model_validate(spec)
    first = train_in_process(settings)

    blocks = project / "blocks.py"
    blocks.write_text(blocks.read_text() + "\n# an edit\n")
    code_edit = train_in_process(settings)
    # the builder is rebuilt; a comment gives the same weights, so training is reused
    assert [k for k, hit in _cached(code_edit).items() if not hit] == ["model"]
    assert code_edit["stages"]["model"]["fingerprint"] == first["stages"]["model"]["fingerprint"]
    causes = compare_manifests(first, code_edit).causes
    assert causes[0] == "model code changed (module byoproj.blocks)"

    pipeline.write_text(pipeline.read_text().replace("p: 0.9", "p: 0.8"))
    pipe_edit = train_in_process(settings)
    assert (
        not pipe_edit["stages"]["augment"]["cached"] and not pipe_edit["stages"]["train"]["cached"]
    )
    assert pipe_edit["stages"]["model"]["cached"]
    assert (
        compare_manifests(code_edit, pipe_edit)
        .causes[0]
        .startswith("augmentation pipeline file changed")
    )

    shutil.copyfile(images / "circle" / "0000.png", images / "circle" / "9999.png")
    img_edit = train_in_process(settings)
    assert not img_edit["stages"]["data"]["cached"]
    # the file that changed is named (issue 19), not just the folder
    assert compare_manifests(pipe_edit, img_edit).causes[0] == "data: 1 file added: circle/9999.png"

    loader = RunSettings.model_validate(
        {**LOADER, "data": {"kind": "python", "loader": "byoproj.loader:digits"},
         "training": {"epochs": 1}, "output_dir": str(tmp_path / "r")}
    )  # fmt: skip
    before = train_in_process(loader)
    (project / "loader.py").write_text((project / "loader.py").read_text() + "\n# an edit\n")
    after = train_in_process(loader)
    assert not after["stages"]["data"]["cached"]
    assert compare_manifests(before, after).causes[0] == (
        "data loader code changed (module byoproj.loader)"
    )


@pytest.mark.slow
def test_a_cached_rerun_imports_no_tensorflow_and_still_writes_tensorboard_logs(
    tiny_runs: TinyRuns, example_images: Path, tmp_path: Path
) -> None:
    single = single_runs(tiny_runs, example_images)["byo_images"]
    code = (
        "import sys; from flows.train import main; main(sys.argv[1:]); "
        "print('tensorflow loaded:', 'tensorflow' in sys.modules)"
    )
    out = tmp_path / "runs"  # a copy: the session's run keeps its one run directory
    shutil.copytree(single.output_dir, out)
    res = subprocess.run(
        [sys.executable, "-c", code, *single.args[:-2], "--output-dir", str(out)],
        cwd=tmp_path,
        env={**cli_env(tmp_path / "home"), "PREFECT_API_URL": tiny_runs.api_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "tensorflow loaded: False" in res.stdout
    newest = max(out.glob("*/manifest.json"), key=lambda p: p.stat().st_mtime)
    assert all(
        v["cached"]
        for k, v in json.loads(newest.read_text())["stages"].items()
        if k != "environment"
    )
    assert (
        newest.parent / "tensorboard" / "validation" / "events.out.tfevents.seedtrail"
    ).is_file()


@pytest.mark.slow
def test_a_sweep_over_seeds_equals_the_single_runs(
    tiny_runs: TinyRuns, example_images: Path, prefect_api_url: str, tmp_path: Path
) -> None:
    single = single_runs(tiny_runs, example_images)["byo_images"]
    sweep_dir = tmp_path / "out" / "sweep"
    args = [*flags(images_settings(example_images)), "--output-dir", str(sweep_dir.parent)]
    sweep = run_module(
        "flows.sweep",
        [*args, "--sweep-dir", str(sweep_dir), "--seeds", "0,1"],
        cwd=tmp_path,
        prefect_home=tmp_path / "home",
        env={"PREFECT_API_URL": prefect_api_url},
    )
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    runs = {r["seed"]: r for r in json.loads((sweep_dir / "summary.json").read_text())["runs"]}
    assert runs[0]["fingerprints"] == single.fingerprints()
    assert runs[1]["fingerprints"]["model"] != runs[0]["fingerprints"]["model"]
    # One hashing pass for the whole sweep (issue 19): its preflight hashed the folder into
    # the store's stat cache; no run (each in its own process) read a file to hash it again.
    # A single run reads each file once (its preflight), however many times it lists them.
    manifests = [json.loads(m.read_text()) for m in sweep_dir.glob("*/manifest.json")]
    assert len(manifests) == 2
    for m in manifests:
        assert m["stages"]["data"]["info"]["files_hashed"] == 0, m["stages"]["data"]["info"]
    n_files = len([p for p in example_images.rglob("*") if p.is_file()])
    assert single.manifest["stages"]["data"]["info"]["files_hashed"] == n_files


@pytest.mark.parametrize(
    ("make", "args", "pattern"),
    [
        (None, ["--model.builder", "examples.nosuch:build"], r"^model\.builder: no module named"),
        (None, ["--model.builder", "examples.model:nope"], r"has no function 'nope'"),
        (
            None,
            ["--model.builder", "settings.validation:CODE_REF_PATTERN"],
            r"is not callable \(it is a str\)",
        ),
        (lambda d: (d / "circle" / "a.txt").write_text("x"), [], r"circle/a\.txt is not a PNG"),
        (lambda d: [p.unlink() for p in (d / "square").iterdir()], [], r"square/ has no images"),
        (
            lambda d: [p.unlink() for p in sorted((d / "square").iterdir())[2:]],
            [],
            r"class square has 2 image\(s\), too few to split",
        ),
        (None, ["--augment.pipeline", "README.md"], r"^augment\.pipeline README\.md: use a \.json"),
        (
            lambda d: (d.parent / "bad.json").write_text("{"),
            ["--augment.pipeline", "{tmp}/bad.json"],
            r"not an albumentations pipeline",
        ),
    ],
)
def test_bad_input_is_one_line_before_anything_runs(
    make, args: list[str], pattern: str, example_images: Path, tmp_path: Path
) -> None:
    """Caught by preflight: no Prefect, no TensorFlow, no run directory."""
    from flows.train import main

    images = tmp_path / "images"
    shutil.copytree(example_images, images)
    if make:
        make(images)
    out = tmp_path / "runs"
    base = ["--data.kind", "images", "--data.path", str(images), "--output-dir", str(out)]
    with pytest.raises(InputError, match=pattern) as err:
        main([*base, *[a.replace("{tmp}", str(tmp_path)) for a in args]])
    assert len(err.value.problems) == 1
    assert not out.exists() or not any(out.iterdir())


def test_a_loader_returning_mismatched_lengths_is_one_line(tmp_path: Path, monkeypatch) -> None:
    from flows.train import main

    (tmp_path / "badload.py").write_text(
        "import numpy as np\ndef load(seed):\n    return np.zeros((5, 2)), np.zeros(4)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["--data.kind", "python", "--data.loader", "badload:load"]
    with pytest.raises(
        InputError, match=r"^data\.loader: badload:load: x has 5 samples but y has 4"
    ):
        main([*args, "--output-dir", str(tmp_path / "runs")])
    assert not (tmp_path / "runs").exists()


def test_a_custom_deployment_run_can_set_the_builder_and_the_image_folder() -> None:
    """The server validates a custom run's parameters against this schema (enforced)."""
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools.validation import ValidationError, validate

    from flows.train import train_flow as train

    schema = parameter_schema(train).model_dump_for_openapi()
    custom = {
        "model": {"builder": "examples.model:build", "options": {"filters": [4, 8]}},
        "data": {"kind": "images", "path": "data/example_images"},
        "augment": {"pipeline": "examples/augment.yaml"},
    }
    validate(custom, schema, raise_on_error=True, ignore_required=True)
    with pytest.raises(ValidationError, match="does not match"):
        validate({"model": {"builder": "not a ref"}}, schema, raise_on_error=True)


JITTERY_LOADER = '''
import os

import numpy as np


def digits(seed):
    """Seeded, unless JITTER is set: then its own unseeded generator (the trial's case)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(None if os.environ.get("JITTER") else seed)
    keep = np.sort(rng.permutation(len(x))[:200])
    return (x[keep].reshape(-1, 8, 8, 1) / 16.0).astype(np.float32), y[keep]
'''


@pytest.mark.slow
def test_a_cached_rerun_does_not_hide_a_loader_with_unseeded_randomness(
    prefect_server: None, prefect_api_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "jittery.py").write_text(JITTERY_LOADER)
    settings = {**LOADER, "data": {"kind": "python", "loader": "jittery:digits"}}
    out = tmp_path / "runs"
    # The first run fills the store (in this process: a command's start is not what is
    # tested); the rerun is the user's command.
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        first = train_in_process(RunSettings.model_validate({**settings, "output_dir": str(out)}))
    finally:
        sys.modules.pop("jittery", None)  # this worker's later tests never see it
    assert first["status"] == "complete"
    # Same code, same settings: every stage would be a cache hit, the data stage's too.
    again = run_module(
        "flows.train", [*flags(settings), "--output-dir", str(out)], cwd=tmp_path,
        prefect_home=tmp_path / "home", env={"PREFECT_API_URL": prefect_api_url, "JITTER": "1"},
    )  # fmt: skip
    assert again.returncode == 2, again.stderr[-2000:]
    line = again.stderr.strip()
    assert "\n" not in line and "data.loader: jittery:digits returned different data" in line
    assert len(list(out.glob("*/manifest.json"))) == 1  # nothing new left
