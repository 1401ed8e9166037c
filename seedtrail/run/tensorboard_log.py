"""TensorBoard logs of a run, written from its history without TensorFlow.

Layout, as Keras' own TensorBoard callback writes it, so a Keras user finds the same
tags (`epoch_loss`, `epoch_accuracy`, step = epoch from 0) with train and validation
drawn on one chart:

    <run_dir>/tensorboard/train/events.out.tfevents.seedtrail        (+ augment_preview image)
    <run_dir>/tensorboard/validation/events.out.tfevents.seedtrail
    <run_dir>/tensorboard/events.out.tfevents.seedtrail              (hparams, test metrics)

The third file makes `<run-id>/tensorboard` an HParams session, as Keras' `hp.KerasCallback`
would: its hyperparameters (the seed, every flat setting, the final-weights fingerprint)
and test metrics, next to the train/validation scalars. TensorBoard's HParams tab then
compares every run under the log dir in one table (hide columns there), with parallel
coordinates, all from the public plugin protos (`tensorboard.plugins.hparams.summary_v2`).

`tensorboard --logdir runs` then lists every run, and every run of a sweep, by its run
id. The files are written from `history.json` and `augment_preview.png` after training,
whether training ran or came from the cache, so a cached rerun gets the same logs
without importing TensorFlow (only tensorboard's protobuf messages, ~0.5 s). They are
logs, not results: no fingerprint covers them (TensorBoard wants a wall time per event).
"""

from __future__ import annotations

import io
import json
import struct
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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


HParam = bool | int | float | str


def flat_hparams(values: Mapping[str, Any], prefix: str = "") -> dict[str, HParam]:
    """Nested settings -> {"training.epochs": 2, ...}; lists as JSON text, unset (None) left out.

    An unset field is left out rather than written as "": TensorBoard infers a column's
    type from its values, and a pinned seed (a number) next to "" would make it text.
    """
    out: dict[str, HParam] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_hparams(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        elif value is not None:
            out[name] = json.dumps(value, sort_keys=True)
    return out


def _hparams_summary(hparams: Mapping[str, HParam], trial_id: str, start: float) -> Any:
    from tensorboard.plugins.hparams import summary_v2  # protos only: no TensorFlow

    return summary_v2.hparams_pb(dict(hparams), trial_id=trial_id, start_time_secs=start)


def _events(
    scalars: Mapping[str, Sequence[float]],
    images: Mapping[str, bytes],
    wall_time: float,
    summaries: Sequence[Any] = (),
) -> bytes:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    buffer = io.BytesIO()
    writer = RecordWriter(buffer)
    writer.write(
        event_pb2.Event(wall_time=wall_time, file_version="brain.Event:2").SerializeToString()
    )
    for summary in summaries:
        writer.write(
            event_pb2.Event(wall_time=wall_time, step=0, summary=summary).SerializeToString()
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
    hparams: Mapping[str, HParam] | None = None,
    test_metrics: Mapping[str, float] | None = None,
) -> list[Path]:
    """Write the run's TensorBoard event files (atomically); returns their paths.

    With `hparams`, a third file at `tensorboard/` holds them (the session: trial id =
    the run directory's name) and `test_metrics` as step-0 scalars.
    """
    wall_time = time.time() if wall_time is None else wall_time
    images = {PREVIEW_TAG: Path(preview_png).read_bytes()} if preview_png else {}
    files = {
        Path(part): _events(scalars, images if part == "train" else {}, wall_time)
        for part, scalars in split_history(history).items()
    }
    if hparams is not None:
        session = _hparams_summary(hparams, Path(run_dir).name, wall_time)
        scalars = {tag: [float(v)] for tag, v in (test_metrics or {}).items()}
        files[Path()] = _events(scalars, {}, wall_time, [session])
    written = []
    for part, data in files.items():
        target = Path(run_dir) / LOG_DIR / part / EVENTS_FILE
        with atomic_path(target, suffix="") as tmp:
            tmp.write_bytes(data)
        written.append(target)
    return written
