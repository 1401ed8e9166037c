"""Augment stage: the albumentations pipeline, seeded per sample so order never matters.

albumentations ignores global seeds. Each sample gets its own 128-bit random
state, words 4i..4i+3 of SeedSequence(augment_seed, spawn_key=(epoch,)), so an
image depends only on (augment seed, epoch, sample index). The state is written
into one shared numpy Generator and Python Random that every transform uses:
`Compose.set_random_seed` per sample would build ten new generators per image
and halve throughput. The stage builds the pipeline and a preview; training
applies it to the training split only, fresh each epoch.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from seedtrail.core.fingerprint import fingerprint_arrays
from seedtrail.core.plots import save_preview
from seedtrail.core.stage import stage
from seedtrail.core.stage_cache import StageContext
from seedtrail.core.stage_result import StageOutput, StageResult
from seedtrail.core.store import load_arrays
from seedtrail.inputs import records
from seedtrail.inputs.augment_pipeline import (
    SampleSeededAugmenter,
    check_pipeline,
    load_pipeline,
    seeded,
)
from seedtrail.runtime.quiet import set_quiet_environment
from settings.model import AugmentSettings
from settings.seeds import epoch_seeds

PREVIEW_EPOCH = 0


def build_augmenter(s: AugmentSettings) -> SampleSeededAugmenter:
    """The user's pipeline file (augment.pipeline) or the built-in one, seeded per sample."""
    if s.pipeline is not None:
        return seeded(load_pipeline(s.pipeline))
    set_quiet_environment()
    import albumentations as A
    import cv2

    cv2.setNumThreads(1)  # results must not depend on the machine's core count
    compose = A.Compose(
        [
            A.HorizontalFlip(p=s.hflip_p),
            A.Affine(
                rotate=(-s.rotate_limit, s.rotate_limit),
                translate_percent=(-s.shift_limit, s.shift_limit),
                scale=(1.0 - s.scale_limit, 1.0 + s.scale_limit),
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                p=0.9,
            ),
            A.RandomBrightnessContrast(
                brightness_limit=s.brightness_limit, contrast_limit=s.brightness_limit, p=0.5
            ),
            A.GaussNoise(std_range=(0.0, s.noise_std), p=0.5 if s.noise_std > 0 else 0.0),
        ],
        seed=0,  # replaced per sample by SampleSeededAugmenter
    )
    return SampleSeededAugmenter(compose)


WORDS_PER_SAMPLE = 4


def augment_images(
    augmenter: SampleSeededAugmenter, images: np.ndarray, words: np.ndarray
) -> np.ndarray:
    """Augment each image from its own 4-word state; the result depends on (state, image) only."""
    out = np.empty_like(images)
    for i, img in enumerate(images):
        out[i] = augmenter(img, words[i]).reshape(img.shape)
    return np.clip(out, 0.0, 1.0, out=out)


def batch_augmenter(s: AugmentSettings):
    """A fresh augmenter as a function (images, states) -> images: one per worker thread."""
    return functools.partial(augment_images, build_augmenter(s))


def epoch_words(augment_seed: int, epoch: int, n: int) -> np.ndarray:
    """The (n, 4) per-sample states of one epoch, row i for dataset index i."""
    return epoch_seeds(augment_seed, epoch, n * WORDS_PER_SAMPLE).reshape(n, WORDS_PER_SAMPLE)


def augment_epoch(
    augmenter: SampleSeededAugmenter,
    x: np.ndarray,
    indices: np.ndarray,
    augment_seed: int,
    epoch: int,
) -> np.ndarray:
    """Augmented copies of x[indices] for one epoch; states indexed by dataset index."""
    words = epoch_seeds(augment_seed, epoch, len(x) * WORDS_PER_SAMPLE)
    return augment_images(augmenter, x[indices], words.reshape(len(x), WORDS_PER_SAMPLE)[indices])


# A pipeline file's content is in the key: AugmentSettings.pipeline is a Path (cache_key.py).
@stage(env="stack")
def run_augment(ctx: StageContext, s: AugmentSettings, seed: int, data: StageResult) -> StageOutput:
    if data.info["modality"] != "image" or not s.enabled:
        return StageOutput.skip(
            "tabular data" if data.info["modality"] != "image" else "augment.enabled=false"
        )
    augmenter = build_augmenter(s)
    if records.is_indexed(data):  # read only the preview's samples
        n = int(data.info["n_samples"])
        idx = np.arange(min(s.preview_samples, n))
        x_idx = records.images(data, idx, ctx.store)
        if s.pipeline is not None:
            check_pipeline(augmenter, x_idx.shape[1:], s.pipeline)
        words = epoch_words(seed, PREVIEW_EPOCH, n)[idx]
        augmented = augment_images(augmenter, x_idx, words)
    else:
        x = load_arrays(Path(data.outputs["arrays"]), data.fingerprint)["x"]
        idx = np.arange(min(s.preview_samples, len(x)))
        if s.pipeline is not None:  # a user's pipeline must work on these images, shape kept
            check_pipeline(augmenter, x.shape[1:], s.pipeline)
        augmented = augment_epoch(augmenter, x, idx, seed, PREVIEW_EPOCH)
        x_idx = x[idx]
    preview = ctx.run_dir / "augment_preview.png"
    save_preview(x_idx, augmented, preview)
    return StageOutput(
        fingerprint_arrays({"preview": augmented}),
        outputs={"augment_preview": str(preview)},
        info={"fingerprint_of": f"first {len(idx)} samples augmented with epoch-0 seeds"},
    )


# --- wiring: how the pipeline feeds this stage (seedtrail/core/wiring.py); not in its code version
def _check(p) -> None:
    """The pipeline file is readable and works on the data's images, shape kept."""
    from seedtrail.inputs.user_inputs import augment_inputs

    s = p.settings.augment
    augment_inputs(s)
    if s.pipeline is not None and p.facts["modality"] == "image" and s.enabled:
        check_pipeline(build_augmenter(s), p.facts["shape"], s.pipeline)


run_augment.wire(check=_check)
