"""Augment stage: the albumentations pipeline, seeded per sample so order never matters.

albumentations ignores global seeds; `Compose.set_random_seed` before each
sample makes an image depend only on (augment seed, epoch, sample index).
The stage itself builds the pipeline and a preview; training applies it to the
training split only, fresh each epoch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from prefect import task

from seedtrail.cache_key import cache_key
from seedtrail.fingerprint import fingerprint_arrays
from seedtrail.quiet import set_quiet_environment
from seedtrail.stage import StageResult, stopwatch
from seedtrail.stage_cache import StageContext, cached
from seedtrail.store import load_arrays
from settings.model import AugmentSettings
from settings.seeds import epoch_seeds

VERSION = "1"
DETERMINISTIC = True
PREVIEW_EPOCH = 0


def build_augmenter(s: AugmentSettings):  # -> albumentations.Compose
    set_quiet_environment()
    import albumentations as A
    import cv2

    cv2.setNumThreads(1)  # results must not depend on the machine's core count
    return A.Compose(
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
        seed=0,  # replaced per sample below
    )


def augment_images(augmenter, images: np.ndarray, sample_seeds: np.ndarray) -> np.ndarray:
    """Augment each image with its own seed; the result depends on (seed, image) only."""
    out = np.empty_like(images)
    for i, (img, seed) in enumerate(zip(images, sample_seeds, strict=True)):
        augmenter.set_random_seed(int(seed))
        res = augmenter(image=img)["image"]
        out[i] = res.reshape(img.shape)
    return np.clip(out, 0.0, 1.0, out=out)


def augment_epoch(
    augmenter, x: np.ndarray, indices: np.ndarray, augment_seed: int, epoch: int
) -> np.ndarray:
    """Augmented copies of x[indices] for one epoch; seeds indexed by dataset index."""
    seeds = epoch_seeds(augment_seed, epoch, len(x))
    return augment_images(augmenter, x[indices], seeds[indices])


def save_preview(original: np.ndarray, augmented: np.ndarray, path: Path) -> None:
    """Grid: originals on top rows, augmented copies (epoch 0) below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seedtrail.atomic import atomic_path

    n = len(original)
    cols = min(n, 8)
    rows = -(-n // cols)
    fig, axes = plt.subplots(2 * rows, cols, figsize=(cols * 1.2, 2 * rows * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        r, c = divmod(i, cols)
        for block, imgs in ((0, original), (rows, augmented)):
            img = imgs[i]
            axes[block + r, c].imshow(
                img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1
            )
    axes[0, 0].set_title("original", fontsize=7, loc="left")
    axes[rows, 0].set_title("augmented (epoch 0)", fontsize=7, loc="left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def run_augment(s: AugmentSettings, seed: int, data: StageResult, run_dir: Path) -> StageResult:
    with stopwatch() as elapsed:
        if data.info["modality"] != "image" or not s.enabled:
            reason = "tabular data" if data.info["modality"] != "image" else "augment.enabled=false"
            return StageResult(
                "augment", seed, "skipped", elapsed(), skipped=True, info={"reason": reason}
            )
        arrays = load_arrays(Path(data.outputs["arrays"]), data.fingerprint)
        x = arrays["x"]
        idx = np.arange(min(s.preview_samples, len(x)))
        augmented = augment_epoch(build_augmenter(s), x, idx, seed, PREVIEW_EPOCH)
        fp = fingerprint_arrays({"preview": augmented})
        preview = run_dir / "augment_preview.png"
        save_preview(x[idx], augmented, preview)
    return StageResult(
        "augment",
        seed,
        fp,
        elapsed(),
        outputs={"augment_preview": str(preview)},
        info={"fingerprint_of": f"first {len(idx)} samples augmented with epoch-0 seeds"},
    )


@task(name="augment")
def augment_task(
    ctx: StageContext, s: AugmentSettings, seed: int, data: StageResult
) -> StageResult:
    key = cache_key(
        "augment", VERSION, s, seed, {"data": data.fingerprint, "stack": ctx.stack_fingerprint}
    )
    return cached(ctx, "augment", key, lambda: run_augment(s, seed, data, ctx.run_dir))
