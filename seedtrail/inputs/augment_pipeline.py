"""An augmentation pipeline the user wrote, from a file in albumentations' own format.

Write it with `A.save(compose, "aug.json")` (or `data_format="yaml"` to a .yaml/.yml file).
The file is read once: its bytes are hashed for the cache key and parsed from the same
bytes, so the key always describes the pipeline in use. The pipeline is wrapped in the
same per-sample-seeded augmenter as the built-in one (`SampleSeededAugmenter`, below; the
built-in pipeline is in tasks/augment.py), so an image
depends on (augment seed, epoch, sample index) only, never on order or worker: any seed
stored in the file is replaced.

Images reach it as float32 in [0, 1], 1 or 3 channels; it must keep their shape (the
model has a fixed input). `check_pipeline` runs it on a blank image of the data's shape
to report a pipeline that cannot work as one line, before training.
"""

from __future__ import annotations

import hashlib
import io
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seedtrail.core.errors import InputError
from seedtrail.runtime.quiet import set_quiet_environment

FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}


@dataclass(frozen=True)
class PipelineFile:
    path: Path
    sha256: str  # of the file's bytes: goes into the cache keys and the manifest
    compose: Any  # albumentations.Compose


def _first_line(err: BaseException) -> str:
    text = (str(err).splitlines() or [""])[0]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def load_pipeline(path: Path, setting: str = "augment.pipeline") -> PipelineFile:
    """Parse an albumentations pipeline file; one InputError line if it cannot be used."""
    path = Path(path)
    where = f"{setting} {path}"
    data_format = FORMATS.get(path.suffix.lower())
    if data_format is None:
        raise InputError(f"{where}: use a .json, .yaml or .yml file written by albumentations.save")
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{where}: cannot read ({_first_line(err)})") from None
    set_quiet_environment()
    import albumentations as A

    try:
        loaded = A.load(io.StringIO(text), data_format=data_format)
    except Exception as err:  # JSON/YAML syntax, unknown transform, invalid arguments (pydantic)
        raise InputError(f"{where}: not an albumentations pipeline ({_first_line(err)})") from None
    if not isinstance(loaded, A.BaseCompose | A.BasicTransform):
        raise InputError(
            f"{where}: holds a {type(loaded).__name__}, not an albumentations transform"
        )
    compose = loaded if isinstance(loaded, A.Compose) else A.Compose([loaded])
    return PipelineFile(path, hashlib.sha256(raw).hexdigest(), compose)


class SampleSeededAugmenter:
    """An albumentations Compose whose randomness is reset from 128 bits before each sample."""

    # Any odd increment is a valid PCG64 stream; fixed so a state fully determines the output.
    _INC = 0xDA3E39CB94B95BDB4E65C5D3F1C1D8AB

    def __init__(self, compose) -> None:
        self.compose = compose
        self._gen = np.random.Generator(np.random.PCG64(0))
        self._py = random.Random(0)
        compose.set_random_state(self._gen, self._py)

    def __call__(self, image: np.ndarray, words: np.ndarray) -> np.ndarray:
        state = int.from_bytes(words.astype(">u4").tobytes(), "big")
        self._gen.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": state, "inc": self._INC},
            "has_uint32": 0,
            "uinteger": 0,
        }
        self._py.seed(state)
        return self.compose(image=image)["image"]


def seeded(pipeline: PipelineFile) -> SampleSeededAugmenter:
    """The per-sample-seeded augmenter (the built-in's too) around the file's pipeline."""
    return SampleSeededAugmenter(pipeline.compose)


def check_pipeline(
    augmenter, sample_shape: tuple[int, ...], path: Path, setting: str = "augment.pipeline"
) -> None:
    """Run it once on a blank float32 image of the data's shape: it must work and keep the shape."""
    where = f"{setting} {path}"
    image = np.full(tuple(sample_shape), 0.5, dtype=np.float32)
    try:
        out = augmenter(image, np.zeros(4, dtype=np.uint32))
    except Exception as err:
        raise InputError(
            f"{where}: fails on float32 images of shape {tuple(sample_shape)} in [0, 1] "
            f"({_first_line(err)})"
        ) from None
    if np.asarray(out).dtype != np.float32:
        raise InputError(
            f"{where}: turns float32 images in [0, 1] into {np.asarray(out).dtype} "
            "(remove FromFloat or ToFloat-like steps)"
        )
    out_shape = np.shape(out)
    squeezed = tuple(sample_shape[:2]) if sample_shape[-1] == 1 else tuple(sample_shape)
    if out_shape not in (tuple(sample_shape), squeezed):
        raise InputError(
            f"{where}: changes the image shape from {tuple(sample_shape)} to {out_shape}; "
            "the model needs a fixed input (add A.Resize, or crop with padding)"
        )
