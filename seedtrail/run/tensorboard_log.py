"""TensorBoard logs of a run, written from its history without TensorFlow.

Layout, as Keras' own TensorBoard callback writes it, so a Keras user finds the same
tags (`epoch_loss`, `epoch_accuracy`, step = epoch from 0) with train and validation
drawn on one chart:

    <run_dir>/tensorboard/train/events.out.tfevents.seedtrail        (+ augment_preview image)
    <run_dir>/tensorboard/validation/events.out.tfevents.seedtrail

`tensorboard --logdir runs` then lists every run, and every run of a sweep, by its run
id. The files are written from `history.json` and `augment_preview.png` after training,
whether training ran or came from the cache, so a cached rerun gets the same logs
without importing TensorFlow (only tensorboard's protobuf messages, ~0.5 s). They are
logs, not results: no fingerprint covers them (TensorBoard wants a wall time per event).
"""

from __future__ import annotations

import io
import struct
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from seedtrail.core.atomic import atomic_path

LOG_DIR = "tensorboard"
#: TensorBoard reads any file whose name contains "tfevents"; no host name or clock in it.
EVENTS_FILE = "events.out.tfevents.seedtrail"
PREVIEW_TAG = "augment_preview"
_COLORSPACE = {0: 1, 4: 2, 2: 3, 6: 4}  # PNG colour type -> Summary.Image colorspace


def split_history(history: Mapping[str, Sequence[float]]) -> dict[str, dict[str, list[float]]]:
    """Keras history {"loss", "val_loss", ...} -> {"train": {"epoch_loss"}, "validation": {...}}."""
    out: dict[str, dict[str, list[float]]] = {"train": {}, "validation": {}}
    for name, values in history.items():
        part, metric = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
        out[part][f"epoch_{metric}"] = [float(v) for v in values]
    return out


def png_size(png: bytes) -> tuple[int, int, int]:
    """(height, width, colorspace) from a PNG's IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    width, height = struct.unpack(">II", png[16:24])
    return height, width, _COLORSPACE.get(png[25], 4)


def _events(
    scalars: Mapping[str, Sequence[float]], images: Mapping[str, bytes], wall_time: float
) -> bytes:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    buffer = io.BytesIO()
    writer = RecordWriter(buffer)
    writer.write(
        event_pb2.Event(wall_time=wall_time, file_version="brain.Event:2").SerializeToString()
    )
    for tag in sorted(scalars):
        for step, value in enumerate(scalars[tag]):
            value_pb = summary_pb2.Summary.Value(tag=tag, simple_value=value)
            event = event_pb2.Event(
                wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=[value_pb])
            )
            writer.write(event.SerializeToString())
    for tag in sorted(images):
        png = images[tag]
        height, width, colorspace = png_size(png)
        image = summary_pb2.Summary.Image(
            height=height, width=width, colorspace=colorspace, encoded_image_string=png
        )
        value_pb = summary_pb2.Summary.Value(tag=tag, image=image)
        event = event_pb2.Event(
            wall_time=wall_time, step=0, summary=summary_pb2.Summary(value=[value_pb])
        )
        writer.write(event.SerializeToString())
    return buffer.getvalue()


def write_run_logs(
    run_dir: Path,
    history: Mapping[str, Sequence[float]],
    preview_png: Path | None = None,
    wall_time: float | None = None,
) -> list[Path]:
    """Write the run's TensorBoard event files (atomically); returns their paths."""
    wall_time = time.time() if wall_time is None else wall_time
    images = {PREVIEW_TAG: Path(preview_png).read_bytes()} if preview_png else {}
    written = []
    for part, scalars in split_history(history).items():
        target = Path(run_dir) / LOG_DIR / part / EVENTS_FILE
        data = _events(scalars, images if part == "train" else {}, wall_time)
        with atomic_path(target, suffix="") as tmp:
            tmp.write_bytes(data)
        written.append(target)
    return written
