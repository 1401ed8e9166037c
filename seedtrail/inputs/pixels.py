"""Pixels of an indexed folder: decode -> resize to uint8, and the resized-uint8 cache on disk.

`decode` turns one file's bytes into (size, size, channels) uint8 as the index's decode
settings say. The cache holds every image of an index so decoded, one fixed-size record
per sample, in `<store>/pixels/<key>.u8`, keyed by the index fingerprint (which covers the
files' sha256 and the decode settings, decoder version included). A sidecar
`<key>.json`, written last, commits it and holds a blake2b digest of each record.

Readers take records with `os.pread`, not a memory map: pages of a mapped file count in
the process's resident memory as they are touched, so an epoch over a memory-mapped
50k-image cache would show the whole file as RSS. `pread` goes through the kernel's page
cache, shared and reclaimable, and the process keeps only the batch it works on. Each
record is checked against its digest as it is read, so a cache damaged on disk is
reported, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seedtrail.core import atomic
from seedtrail.core.errors import InputError
from seedtrail.inputs.index import ImageIndex, default_workers, ordered_map, write_compact
from seedtrail.inputs.progress import Progress


class DataChanged(InputError):
    """An indexed file is gone or has other bytes than when it was indexed (found while reading).

    Raised during training it ends the run failed, with its line; `--resume` continues
    once the file is restored (its bytes must be the indexed ones again).
    """


def _cv2():
    import cv2

    cv2.setNumThreads(1)  # results must not depend on the machine's core count
    return cv2


def decode(data: bytes, size: int, channels: int) -> np.ndarray | None:
    """(size, size, channels) uint8, or None when the bytes are not a decodable image."""
    cv2 = _cv2()
    colour = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    img = cv2.imdecode(np.frombuffer(data, np.uint8), colour | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        return None
    if channels == 3:  # OpenCV's order is BGR
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.shape[:2] != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return img.reshape(size, size, channels)


def read_file(index: ImageIndex, i: int, setting: str = "data.path") -> np.ndarray:
    """Sample i decoded from its file; the bytes read are hashed and must be the indexed ones."""
    rel = index.files[i]
    where = f"{setting} {index.root}"
    try:
        data = (Path(index.root) / rel).read_bytes()
    except FileNotFoundError:
        raise DataChanged(
            f"{where}: {rel} was deleted after indexing; restore it (or rerun to re-index)"
        ) from None
    except OSError as err:
        raise DataChanged(f"{where}: {rel} cannot be read ({err.strerror or err})") from None
    if hashlib.sha256(data).hexdigest() != index.sha256[i]:
        raise DataChanged(
            f"{where}: {rel} changed after indexing (sha256 differs); restore it "
            "(or rerun to re-index)"
        )
    img = decode(data, index.size, index.channels)
    if img is None:
        raise InputError(f"{where}: {rel} cannot be decoded as a PNG or JPEG image")
    return img


def _digest(record: bytes | memoryview | np.ndarray) -> str:
    return hashlib.blake2b(record, digest_size=16).hexdigest()


@dataclass(frozen=True)
class CacheFiles:
    data: Path
    meta: Path


def cache_files(store: Path, index: ImageIndex) -> CacheFiles:
    base = Path(store) / "pixels" / index.fingerprint
    return CacheFiles(base.with_suffix(".u8"), base.with_suffix(".json"))


class PixelCache:
    """A committed cache file, read by record; thread-safe (pread shares no file offset)."""

    def __init__(self, index: ImageIndex, files: CacheFiles, digests: list[str]) -> None:
        self.index, self.files, self.digests = index, files, digests
        self.record = int(np.prod(index.sample_shape))
        self._fd = os.open(files.data, os.O_RDONLY)
        self._lock = threading.Lock()

    def read(self, i: int) -> np.ndarray:
        out = np.empty(self.index.sample_shape, np.uint8)
        self.read_into(i, out)
        return out

    def read_into(self, i: int, out: np.ndarray) -> None:
        """Record i straight into `out` (a C-contiguous uint8 array of one sample's shape):
        one `preadv`, no intermediate bytes object; checked against its digest."""
        got = os.preadv(self._fd, [out], i * self.record)
        if got != self.record or _digest(out) != self.digests[i]:
            raise DataChanged(
                f"data cache {self.files.data}: record {i} ({self.index.files[i]}) is damaged; "
                "delete the file to rebuild it"
            )

    @property
    def fingerprint(self) -> str:
        """Of the decoded pixels (what the decoder made of the indexed bytes)."""
        return hashlib.sha256("".join(self.digests).encode()).hexdigest()

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __del__(self) -> None:
        self.close()

    def __getstate__(self) -> dict:  # processes reopen the file
        return {"index": self.index, "files": self.files, "digests": self.digests}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["index"], state["files"], state["digests"])


def open_cache(store: Path, index: ImageIndex) -> PixelCache | None:
    """The committed cache of this index, or None when there is none (or it is unusable)."""
    files = cache_files(store, index)
    try:
        meta = json.loads(files.meta.read_text())
        record = int(np.prod(index.sample_shape))
        if (
            meta.get("index") != index.fingerprint
            or len(meta.get("digests", [])) != len(index)
            or files.data.stat().st_size != record * len(index)
        ):
            return None
        return PixelCache(index, files, list(meta["digests"]))
    except (OSError, ValueError, TypeError):
        return None


def build_cache(
    store: Path, index: ImageIndex, workers: int | None = None, setting: str = "data.path"
) -> PixelCache:
    """Decode every file once (in parallel, each checked against the index) into the cache."""
    files = cache_files(store, index)
    record = int(np.prod(index.sample_shape))
    n = len(index)
    digests: list[str] = [""] * n
    files.data.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(files.data) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, record * n)

            def one(i: int) -> None:
                img = np.ascontiguousarray(read_file(index, i, setting))
                raw = img.tobytes()
                digests[i] = _digest(raw)
                os.pwrite(fd, raw, i * record)

            with Progress("data: decoding images", n) as bar:
                for _ in ordered_map(one, n, workers or default_workers()):
                    bar.update()
        finally:
            os.close(fd)
    write_compact(files.meta, {"index": index.fingerprint, "digests": digests})
    return PixelCache(index, files, digests)


def ensure_cache(
    store: Path, index: ImageIndex, workers: int | None = None, setting: str = "data.path"
) -> PixelCache:
    return open_cache(store, index) or build_cache(store, index, workers, setting)
