"""A folder of images, one subfolder per class: DIR/<class>/**/*.png|jpg|jpeg.

Reproducible by construction:
- Order: classes sorted by name (label i = i-th name), files sorted by their path within
  the class, never in the filesystem's listing order. Names are compared in Unicode NFC,
  so a copy made on macOS (NFD names) sorts the same.
- Pixels: decoded by OpenCV (pinned in uv.lock) as stored, without EXIF rotation (as
  Keras' image_dataset_from_directory), alpha dropped. If every image is grayscale the
  set has 1 channel, otherwise every image is RGB (gray ones repeated to 3 channels).
- Size: resized to image_size x image_size (aspect ratio not kept) with INTER_AREA on the
  integer pixels, then scaled to float32 in [0, 1]; an image already that size is not
  resampled at all.
- Fingerprint: the decoded arrays, the labels and the sorted file list (`arrays()`).

Files and folders whose name starts with "." are ignored (.DS_Store, .ipynb_checkpoints).
Any other problem is one InputError line naming data.path and the file.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seedtrail.core.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: One image each for the train, validation and test split.
MIN_PER_CLASS = 3


@dataclass(frozen=True)
class ImageFolder:
    x: np.ndarray  # (n, size, size, 1 | 3) float32 in [0, 1]
    y: np.ndarray  # (n,) int32: index into class_names
    class_names: tuple[str, ...]
    files: tuple[str, ...]  # paths relative to the folder, POSIX, NFC, in reading order

    def arrays(self) -> dict[str, np.ndarray]:
        """What the data stage stores and fingerprints: pixels, labels, the file list."""
        return {"x": self.x, "y": self.y, "files": np.array(self.files, dtype=np.str_)}


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def list_images(root: Path, setting: str = "data.path") -> tuple[tuple[str, ...], list[Path]]:
    """(class names, image files in reading order); checks the layout, decodes nothing."""
    where = f"{setting} {root}"
    if not root.is_dir():
        raise InputError(f"{where}: not a folder (expected one subfolder of images per class)")
    entries = sorted(
        (p for p in root.iterdir() if not p.name.startswith(".")), key=lambda p: _nfc(p.name)
    )
    stray = [p.name for p in entries if not p.is_dir()]
    if stray:
        raise InputError(f"{where}: {stray[0]} is not inside a class folder (DIR/<class>/image)")
    if len(entries) < 2:
        raise InputError(f"{where}: needs at least 2 class folders, found {len(entries)}")
    files: list[Path] = []
    for cls in entries:
        found = sorted(
            (p for p in cls.rglob("*") if p.is_file() and not _hidden(p.relative_to(root))),
            key=lambda p: _nfc(p.relative_to(root).as_posix()),
        )
        for p in found:
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                rel = p.relative_to(root).as_posix()
                raise InputError(f"{where}: {rel} is not a PNG or JPEG image (by its name)")
        if not found:
            raise InputError(f"{where}: class folder {cls.name}/ has no images")
        if len(found) < MIN_PER_CLASS:
            raise InputError(
                f"{where}: class {cls.name} has {len(found)} image(s), too few to split: "
                f"each class needs at least {MIN_PER_CLASS} (train, validation, test)"
            )
        files.extend(found)
    return tuple(_nfc(p.name) for p in entries), files


def content_sha256(root: Path, files: list[Path]) -> str:
    """sha256 over each file's relative path and bytes, in reading order: a cheap cache key."""
    h = hashlib.sha256()
    for p in files:
        rel = _nfc(p.relative_to(root).as_posix()).encode()
        h.update(len(rel).to_bytes(4, "big") + rel + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _decode(path: Path, where: str, rel: str) -> np.ndarray:
    import cv2

    raw = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if img is None:
        raise InputError(f"{where}: {rel} cannot be decoded as a PNG or JPEG image")
    if img.dtype not in (np.uint8, np.uint16):
        raise InputError(f"{where}: {rel} has {img.dtype} pixels; use 8- or 16-bit images")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3:  # OpenCV's channel order is BGR(A); drop alpha
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
    return img


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if img.shape[:2] == (size, size):
        return img
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def read_image_folder(root: Path, image_size: int, setting: str = "data.path") -> ImageFolder:
    """Decode every image of the folder, in sorted order, to (n, size, size, 1|3) in [0, 1]."""
    import cv2

    cv2.setNumThreads(1)  # results must not depend on the machine's core count
    root = Path(root)
    class_names, files = list_images(root, setting)
    where = f"{setting} {root}"
    images, labels = [], []
    for p in files:
        rel = p.relative_to(root)
        img = _decode(p, where, rel.as_posix())
        scale = np.float32(65535.0 if img.dtype == np.uint16 else 255.0)
        images.append(_resize(img, image_size).astype(np.float32) / scale)
        labels.append(class_names.index(_nfc(rel.parts[0])))
    gray = all(img.ndim == 2 for img in images)
    x = np.stack(
        [
            img[..., None] if gray else (img if img.ndim == 3 else np.repeat(img[..., None], 3, 2))
            for img in images
        ]
    )
    names = tuple(_nfc(p.relative_to(root).as_posix()) for p in files)
    return ImageFolder(x.astype(np.float32), np.array(labels, dtype=np.int32), class_names, names)
