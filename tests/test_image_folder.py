"""Image folders: sorted reading, gray/RGB, resizing, the fingerprint, and one-line errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from seedtrail.core.errors import InputError
from seedtrail.core.fingerprint import fingerprint_arrays
from seedtrail.inputs.image_folder import content_sha256, list_images, read_image_folder


def write_folder(root: Path, classes: dict[str, int], size: int = 10, rgb: bool = False) -> Path:
    rng = np.random.default_rng(0)
    for name, n in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (size, size + 2, 3) if rgb else (size, size + 2)
            img = rng.integers(0, 256, shape, dtype=np.uint8)
            ext = ".jpg" if i % 3 == 2 else ".png"
            cv2.imwrite(str(root / name / f"img{i:02d}{ext}"), img)
    return root


def test_reads_in_sorted_order_with_labels_and_file_list(tmp_path: Path):
    root = write_folder(tmp_path / "d", {"dog": 4, "cat": 3})
    (root / ".DS_Store").write_bytes(b"junk")  # hidden files are ignored
    ds = read_image_folder(root, 8)
    assert ds.class_names == ("cat", "dog")
    assert ds.files[:3] == ("cat/img00.png", "cat/img01.png", "cat/img02.jpg")
    assert ds.y.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert ds.x.shape == (7, 8, 8, 1) and ds.x.dtype == np.float32
    assert ds.x.min() >= 0.0 and ds.x.max() <= 1.0


def test_listing_order_does_not_matter(tmp_path: Path):
    a = write_folder(tmp_path / "a", {"x": 3, "y": 3})
    b = tmp_path / "b"
    for cls in ("y", "x"):  # created in another order, files copied in reverse
        (b / cls).mkdir(parents=True)
        for f in sorted((a / cls).iterdir(), reverse=True):
            shutil.copyfile(f, b / cls / f.name)
    fa, fb = read_image_folder(a, 8), read_image_folder(b, 8)
    assert fingerprint_arrays(fa.arrays()) == fingerprint_arrays(fb.arrays())
    assert content_sha256(a, list_images(a)[1]) == content_sha256(b, list_images(b)[1])


def test_rgb_if_any_image_is_color_and_an_image_of_the_right_size_is_not_resampled(tmp_path: Path):
    root = write_folder(tmp_path / "d", {"a": 3, "b": 3})
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 2] = 255  # OpenCV writes BGR: this is pure red
    cv2.imwrite(str(root / "b" / "red.png"), rgb)
    ds = read_image_folder(root, 8)
    assert ds.x.shape[-1] == 3
    red = ds.x[ds.files.index("b/red.png")]
    assert np.all(red[..., 0] == 1.0) and np.all(red[..., 1:] == 0.0)
    square = tmp_path / "sq"
    for cls in ("a", "b"):
        (square / cls).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(square / cls / f"{i}.png"), np.full((8, 8), 51 * i, np.uint8))
    sq = read_image_folder(square, 8)
    assert sq.x[:3, 0, 0, 0].tolist() == pytest.approx([0.0, 0.2, 0.4])


def test_the_fingerprint_covers_pixels_labels_and_file_names(tmp_path: Path):
    root = write_folder(tmp_path / "d", {"a": 3, "b": 3})
    before = fingerprint_arrays(read_image_folder(root, 8).arrays())
    os.rename(root / "b" / "img00.png", root / "b" / "img99.png")  # same pixels, other order/name
    assert fingerprint_arrays(read_image_folder(root, 8).arrays()) != before


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda r: (r / "c").mkdir(), r"class folder c/ has no images"),
        (lambda r: (r / "a" / "notes.txt").write_text("hi"), r"a/notes\.txt is not a PNG or JPEG"),
        (
            lambda r: (r / "a" / "bad.png").write_bytes(b"not a png"),
            r"a/bad\.png cannot be decoded",
        ),
        (lambda r: (r / "stray.png").write_bytes(b""), r"stray\.png is not inside a class folder"),
        (lambda r: shutil.rmtree(r / "b"), r"needs at least 2 class folders, found 1"),
        (
            lambda r: [p.unlink() for p in sorted((r / "b").iterdir())[:2]],
            r"class b has 1 image\(s\), too few to split",
        ),
    ],
)
def test_bad_folders_are_one_line_naming_data_path(tmp_path: Path, make, pattern):
    root = write_folder(tmp_path / "d", {"a": 3, "b": 3})
    make(root)
    with pytest.raises(InputError, match=rf"^data\.path {root}: {pattern}") as err:
        read_image_folder(root, 8)
    assert len(err.value.problems) == 1 and "\n" not in err.value.problems[0]


def test_a_file_is_not_a_folder(tmp_path: Path):
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"^data\.path .*x\.png: not a folder"):
        read_image_folder(tmp_path / "x.png", 8)
