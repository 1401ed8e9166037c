"""The examples work as shipped: image folder script, model module, loader, pipeline file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seedtrail.core.fingerprint import fingerprint_arrays
from seedtrail.inputs.augment_pipeline import check_pipeline, load_pipeline, seeded
from seedtrail.inputs.data_loader import load
from seedtrail.inputs.image_folder import read_image_folder
from seedtrail.inputs.user_code import fingerprint_code, resolve

ROOT = Path(__file__).resolve().parent.parent


def test_make_images_writes_the_same_rgb_folder_every_time(tmp_path: Path):
    from examples.make_images import main

    main([str(tmp_path / "a"), "--per-class", "4", "--size", "12"])
    main([str(tmp_path / "b"), "--per-class", "4", "--size", "12"])
    a, b = read_image_folder(tmp_path / "a", 12), read_image_folder(tmp_path / "b", 12)
    assert a.class_names == ("circle", "square", "triangle")
    assert a.x.shape == (12, 12, 12, 3) and any(f.endswith(".jpg") for f in a.files)
    assert fingerprint_arrays(a.arrays()) == fingerprint_arrays(b.arrays())


def test_example_model_code_fingerprint_names_its_helper_module():
    fp = fingerprint_code("examples.model:build", "model.builder")
    assert list(fp.modules) == ["examples", "examples.blocks", "examples.model"]


_BUILD = """
from seedtrail.inputs.model_builder import build_seeded
from seedtrail.inputs.user_code import resolve
from seedtrail.runtime import hardware, tf_runtime
from settings.model import DeterminismSettings

tf_runtime.configure(DeterminismSettings(), 0, hardware.expected_devices(hardware.gpu_facts()))
tf_runtime.configured_tf()
print(build_seeded(resolve("examples.model:build", "model.builder"), (12, 12, 3), 3, 5,
                   {"filters": [4, 8]})[1])
"""


def _build(ref: str, seed: int, options: dict | None = None) -> str:
    from seedtrail.inputs.model_builder import build_seeded

    return build_seeded(resolve(ref, "model.builder"), (12, 12, 3), 3, seed, options)[1]


@pytest.mark.usefixtures("tensorflow_as_runs_configure_it")  # builds models here
def test_example_builders_depend_on_their_seed_and_architecture():
    a = _build("examples.model:build", 5, {"filters": [4, 8]})
    assert _build("examples.model:build", 6, {"filters": [4, 8]}) != a
    assert _build("examples.model:build_plain", 5) not in (
        a,
        _build("examples.model:build_plain", 6),
    )


@pytest.mark.slow
@pytest.mark.usefixtures("tensorflow_as_runs_configure_it")
def test_example_builder_gives_the_same_weights_in_another_process():
    here = _build("examples.model:build", 5, {"filters": [4, 8]})
    proc = subprocess.run(
        [sys.executable, "-c", _BUILD], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == here


def test_example_loader_and_pipeline():
    data = load(resolve("examples.loader:digits", "data.loader"), 3, "examples.loader:digits")
    assert (
        data.modality == "image" and data.x.shape[1:] == (8, 8, 1) and len(data.class_names) == 10
    )
    again = load(resolve("examples.loader:digits", "data.loader"), 3, "examples.loader:digits")
    assert np.array_equal(data.x, again.x)
    pipeline = load_pipeline(ROOT / "examples" / "augment.yaml")
    for shape in ((12, 12, 3), (8, 8, 1)):
        check_pipeline(seeded(pipeline), shape, pipeline.path)
