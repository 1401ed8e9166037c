"""Write a small image-folder dataset: `python -m examples.make_images DIR [--per-class N] [--size PX]`.

DIR/<class>/<n>.png|jpg, one folder per class, as `--data.kind images --data.path DIR`
reads it. The images are seedtrail's synthetic shapes, coloured, so the set is RGB; every
fifth one is a JPEG to show both formats. Nothing is downloaded; the same arguments
write the same files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from seedtrail.inputs.datasets import SHAPES, synthetic_shapes

COLOURS = np.array([[1.0, 0.3, 0.2], [0.2, 0.8, 0.3], [0.3, 0.4, 1.0]], dtype=np.float32)


def write_dataset(
    root: Path, per_class: int = 30, size: int = 32, n_classes: int = 3, seed: int = 0
) -> list[Path]:
    gray, y = synthetic_shapes(per_class * n_classes, size, n_classes, noise=0.1, seed=seed)
    tint = COLOURS[np.random.default_rng(seed).integers(0, len(COLOURS), len(y))]
    rgb = np.clip(gray * tint[:, None, None, :], 0.0, 1.0)
    written = []
    for i, (img, label) in enumerate(zip(rgb, y, strict=True)):
        folder = root / SHAPES[label]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:04d}{'.jpg' if i % 5 == 4 else '.png'}"
        bgr = cv2.cvtColor((img * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(path), bgr)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.make_images", description=__doc__.splitlines()[0]
    )
    parser.add_argument("root", type=Path, help="folder to write (one subfolder per class)")
    parser.add_argument("--per-class", type=int, default=30, help="images per class (default 30)")
    parser.add_argument("--size", type=int, default=32, help="side in pixels (default 32)")
    parser.add_argument(
        "--classes", type=int, default=3, choices=(2, 3, 4), help="classes (default 3)"
    )
    args = parser.parse_args(argv)
    files = write_dataset(args.root, args.per_class, args.size, args.classes)
    print(f"wrote {len(files)} images in {args.classes} class folders under {args.root}")


if __name__ == "__main__":
    main()
