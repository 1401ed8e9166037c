"""TensorBoard logs: Keras' layout and tags, written without TensorFlow."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from seedtrail.run.tensorboard_log import (
    EVENTS_FILE,
    flat_hparams,
    png_size,
    split_history,
    write_run_logs,
)
from tests.conftest import TinyRuns

HISTORY = {
    "loss": [1.0, 0.5],
    "accuracy": [0.4, 0.7],
    "val_loss": [1.1, 0.6],
    "val_accuracy": [0.3, 0.8],
}
# a 2x3 RGBA PNG (header and IHDR are all that png_size reads)
PNG = (
    b"\x89PNG\r\n\x1a\n"
    + b"\x00\x00\x00\rIHDR"
    + struct.pack(">II", 3, 2)
    + b"\x08\x06\x00\x00\x00"
)


def read_events(path: Path):
    from tensorboard.compat.proto import event_pb2
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    data, events, i = path.read_bytes(), [], 0
    while i < len(data):
        header = data[i : i + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[i + 8 : i + 12])[0] == masked_crc32c(header)
        body = data[i + 12 : i + 12 + length]
        assert struct.unpack("<I", data[i + 12 + length : i + 16 + length])[0] == masked_crc32c(
            body
        )
        events.append(event_pb2.Event.FromString(body))
        i += 16 + length
    return events


def test_history_splits_like_keras_tensorboard_callback():
    assert split_history(HISTORY) == {
        "train": {"epoch_loss": [1.0, 0.5], "epoch_accuracy": [0.4, 0.7]},
        "validation": {"epoch_loss": [1.1, 0.6], "epoch_accuracy": [0.3, 0.8]},
    }
    assert png_size(PNG) == (2, 3, 4)


def test_event_files_hold_per_epoch_scalars_and_the_preview(tmp_path: Path):
    (tmp_path / "preview.png").write_bytes(PNG)
    paths = write_run_logs(tmp_path / "run", HISTORY, tmp_path / "preview.png", wall_time=1.0)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        f"run/tensorboard/train/{EVENTS_FILE}",
        f"run/tensorboard/validation/{EVENTS_FILE}",
    ]
    train = read_events(paths[0])
    assert train[0].file_version == "brain.Event:2"
    scalars = {
        (v.tag, e.step): v.simple_value
        for e in train[1:]
        for v in e.summary.value
        if not v.HasField("image")
    }
    assert scalars == pytest.approx(
        {
            ("epoch_accuracy", 0): 0.4,
            ("epoch_accuracy", 1): 0.7,
            ("epoch_loss", 0): 1.0,
            ("epoch_loss", 1): 0.5,
        }
    )
    (image,) = [v.image for e in train for v in e.summary.value if v.HasField("image")]
    assert (image.height, image.width, image.encoded_image_string) == (2, 3, PNG)
    val = read_events(paths[1])
    assert {v.tag for e in val[1:] for v in e.summary.value} == {"epoch_loss", "epoch_accuracy"}
    # same history, same time: same bytes (the files carry no host name or clock of their own)
    again = write_run_logs(tmp_path / "run2", HISTORY, tmp_path / "preview.png", wall_time=1.0)
    assert again[0].read_bytes() == paths[0].read_bytes()


def test_writing_imports_no_tensorflow(tmp_path: Path):
    code = (
        "import sys; from pathlib import Path; from seedtrail.run.tensorboard_log import write_run_logs;"
        f"write_run_logs(Path({str(tmp_path)!r}), {{'loss': [1.0], 'val_loss': [2.0]}},"
        " hparams={'seed': 1}, test_metrics={'test_loss': 0.5});"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported TF'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
    assert (tmp_path / "tensorboard" / "validation" / EVENTS_FILE).is_file()
    assert (tmp_path / "tensorboard" / EVENTS_FILE).is_file()


def test_nested_settings_flatten_to_scalar_hparams():
    settings = {"seed": 3, "training": {"epochs": 2, "optimizer": "adam"},
                "model": {"conv_filters": [4, 8], "builder": None}, "augment": {"enabled": True}}  # fmt: skip
    assert flat_hparams(settings) == {
        "seed": 3,
        "training.epochs": 2,
        "training.optimizer": "adam",
        "model.conv_filters": "[4, 8]",  # TensorBoard takes numbers, text and booleans only
        "augment.enabled": True,
    }  # an unset field (None) is left out: the column keeps one type across runs


def test_the_run_is_an_hparams_session_with_its_test_metrics(tmp_path: Path):
    from tensorboard.plugins.hparams import metadata

    hparams = {"seed": 3, "training.epochs": 2, "fingerprint": "4b0c7752e50eac4f"}
    paths = write_run_logs(
        tmp_path / "run-7", HISTORY, hparams=hparams, test_metrics={"test_accuracy": 0.75},
        wall_time=1.0,
    )  # fmt: skip
    root = tmp_path / "run-7" / "tensorboard" / EVENTS_FILE
    assert root in paths
    values = [v for e in read_events(root)[1:] for v in e.summary.value]
    (session,) = [v for v in values if v.tag == metadata.SESSION_START_INFO_TAG]
    assert session.metadata.plugin_data.plugin_name == metadata.PLUGIN_NAME
    info = metadata.parse_session_start_info_plugin_data(session.metadata.plugin_data.content)
    assert info.group_name == "run-7"  # the run directory's name: one row per run
    assert info.hparams["seed"].number_value == 3
    assert info.hparams["fingerprint"].string_value == "4b0c7752e50eac4f"
    assert {v.tag: v.simple_value for v in values if v.tag != session.tag} == {
        "test_accuracy": 0.75
    }


def hparams_session_groups(logdir: Path) -> list[dict]:
    """What TensorBoard's HParams tab lists for `tensorboard --logdir logdir` (its own plugin)."""
    import json

    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import hparams_plugin
    from werkzeug.test import Client

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(logdir))
    context = base_plugin.TBContext(logdir=str(logdir), multiplexer=mux, data_provider=provider)
    route = hparams_plugin.HParamsPlugin(context).get_plugin_apps()["/session_groups"]
    request = {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN"], "sliceSize": 100}
    response = Client(route).post(json=request)
    assert response.status_code == 200, response.get_data(as_text=True)
    return json.loads(response.get_data())["sessionGroups"]


@pytest.mark.slow
def test_tensorboard_compares_real_runs_in_its_hparams_table(
    tiny_runs: TinyRuns, tmp_path: Path
) -> None:
    runs = tiny_runs.get(base=(), seed1=("--seed", "1"))
    logdir = tmp_path / "runs"  # as `tensorboard --logdir runs` sees two runs' folder
    logdir.mkdir()
    for run in runs.values():
        (logdir / run.run_dir.name).symlink_to(run.run_dir)
    groups = {g["name"]: g for g in hparams_session_groups(logdir)}
    assert set(groups) == {run.run_dir.name for run in runs.values()}
    for run in runs.values():
        group, manifest = groups[run.run_dir.name], run.manifest
        assert group["hparams"]["seed"] == manifest["settings"]["seed"]
        assert group["hparams"]["training.epochs"] == manifest["settings"]["training"]["epochs"]
        assert group["hparams"]["fingerprint"] == manifest["stages"]["train"]["fingerprint"][:16]
        assert "output_dir" not in group["hparams"]  # where, not what
        metrics = {
            (m["name"]["group"], m["name"]["tag"]): m["value"] for m in group["metricValues"]
        }
        assert metrics[("", "test_accuracy")] == pytest.approx(
            manifest["metrics"]["test_accuracy"], rel=1e-6
        )
        assert ("validation", "epoch_loss") in metrics
