"""`python -m benchmarks.make_images OUT --classes 4 --count 16000 --size 96`: a big JPEG folder.

OUT/<class>/<nnnnnn>.jpg, one class per shape (circle, square, triangle, cross, then
the same shapes again in other colours), each image a coloured shape at a random place
and size on a noisy background. Image i depends only on (--seed, i): the same flags
give the same files, whatever --workers. For benchmarks and by hand; tests use a few
dozen images made in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle", "cross")


def draw(i: int, n_classes: int, size: int, seed: int) -> tuple[int, bytes]:
    """(class, JPEG bytes) of image i."""
    import cv2

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,)))
    label = i % n_classes
    img = rng.normal(110, 40, (size, size, 3)).clip(0, 255).astype(np.uint8)
    img = cv2.GaussianBlur(img, (5, 5), 0)
    colour = tuple(int(c) for c in rng.integers(60, 256, 3))
    cx, cy = (int(v) for v in rng.uniform(0.3, 0.7, 2) * size)
    r = int(rng.uniform(0.15, 0.3) * size)
    shape = SHAPES[label % len(SHAPES)]
    if shape == "circle":
        cv2.circle(img, (cx, cy), r, colour, -1)
    elif shape == "square":
        cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
    elif shape == "triangle":
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(img, [pts], colour)
    else:
        arm = max(1, r // 3)
        cv2.rectangle(img, (cx - r, cy - arm), (cx + r, cy + arm), colour, -1)
        cv2.rectangle(img, (cx - arm, cy - r), (cx + arm, cy + r), colour, -1)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return label, buf.tobytes()


def _write_range(args: tuple[Path, int, int, int, int, int]) -> int:
    out, start, stop, n_classes, size, seed = args
    for i in range(start, stop):
        label, data = draw(i, n_classes, size, seed)
        (out / f"class_{label:02d}" / f"{i:07d}.jpg").write_bytes(data)
    return stop - start


def make_folder(
    out: Path, n_classes: int, count: int, size: int, seed: int = 0, workers: int = 2
) -> Path:
    """Write `count` JPEGs into `out` (created), `n_classes` subfolders; returns `out`."""
    out = Path(out)
    for k in range(n_classes):
        (out / f"class_{k:02d}").mkdir(parents=True, exist_ok=True)
    chunk = 2000
    jobs = [(out, s, min(s + chunk, count), n_classes, size, seed) for s in range(0, count, chunk)]
    done = 0
    with ProcessPoolExecutor(max(1, workers)) as pool:
        for n in pool.map(_write_range, jobs):
            done += n
            print(f"\rmake_images: {done}/{count}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="folder to create (class subfolders inside)")
    p.add_argument("--classes", type=int, default=4, help="number of class folders (>= 2)")
    p.add_argument("--count", type=int, default=1000, help="number of images in all")
    p.add_argument("--size", type=int, default=96, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0, help="same seed, same files")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes")
    a = p.parse_args(argv)
    if a.classes < 2 or a.count < 3 * a.classes or a.size < 8:
        p.error("need --classes >= 2, --count >= 3 per class, --size >= 8")
    make_folder(a.out, a.classes, a.count, a.size, a.seed, a.workers)


if __name__ == "__main__":
    main()
