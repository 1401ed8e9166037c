"""TensorBoard logs: Keras' layout and tags, written without TensorFlow."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from seedtrail.run.tensorboard_log import EVENTS_FILE, png_size, split_history, write_run_logs

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
        f"write_run_logs(Path({str(tmp_path)!r}), {{'loss': [1.0], 'val_loss': [2.0]}});"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported TF'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
    assert (tmp_path / "tensorboard" / "validation" / EVENTS_FILE).is_file()
