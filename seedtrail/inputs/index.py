"""The index of an image folder: what the data stage records instead of pixels.

An index holds the sorted relative paths (seedtrail/inputs/image_folder.py's reading order), the
labels, each file's sha256 and the decode settings; its fingerprint is the data stage's.
It is kilobytes to a few megabytes (about 100 bytes a file), never a copy of the pixels.

Hashing a big folder is the one pass over every byte: files are read and hashed by
`workers` threads (file reads and sha256 release the GIL), and each file's header is
checked from the same bytes (a PNG or JPEG, gray or colour, a JPEG not cut short).
A stat cache in the store (`<store>/hashes/`) remembers (size, mtime, ctime, inode) ->
sha256 per file, as git's index does, so later runs, a sweep's seeds and the preflight
check do not hash the folder again; a file whose stat changed is hashed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from seedtrail.core import atomic
from seedtrail.core.errors import InputError
from seedtrail.core.fingerprint import fingerprint_json
from seedtrail.inputs.image_folder import _nfc, list_images
from seedtrail.inputs.progress import Progress

T = TypeVar("T")
#: PIL modes decoded as one gray channel (alpha dropped).
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
FORMATS = frozenset({"PNG", "JPEG", "MPO"})  # MPO: a JPEG with extra frames (phones)
_STAT_CACHE_VERSION = 1
INDEX_VERSION = 1


def default_workers() -> int:
    """Worker threads when data.workers is not set: the cores this process may use (max 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def ordered_map(fn: Callable[[int], T], n: int, workers: int, window: int = 256) -> Iterator[T]:
    """fn(0) .. fn(n-1) in `workers` threads, yielded in order, with at most `window` pending.

    `ThreadPoolExecutor.map` would create all n futures at once: memory that grows with
    the folder (about 1 KB a file), which is what this whole design avoids.
    """
    if workers <= 1 or n < 64:
        for i in range(n):
            yield fn(i)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Future[T]] = deque()
        for i in range(n):
            pending.append(pool.submit(fn, i))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def header_problem(data: bytes) -> tuple[str | None, bool]:
    """(problem or None, gray) from a file's bytes, without decoding its pixels."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, mode = im.format, im.mode
    except Exception:
        return "cannot be decoded as a PNG or JPEG image", False
    if fmt not in FORMATS:
        return f"is a {fmt} image, not a PNG or JPEG", False
    # A JPEG cut short has no end-of-image marker after its last scan (decoders would fill
    # the rest with gray and say nothing): refuse it.
    if fmt in ("JPEG", "MPO") and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        return "is a truncated JPEG (no end-of-image marker after its last scan)", False
    return None, mode in GRAY_MODES


@dataclass(frozen=True)
class Listing:
    """Each file of a folder by content, in reading order."""

    files: tuple[str, ...]  # relative POSIX paths, NFC
    sha256: tuple[str, ...]
    gray: tuple[bool, ...]

    def content_sha256(self) -> str:
        """sha256 over each file's relative path and sha256 (the user_inputs record)."""
        h = hashlib.sha256()
        for rel, sha in zip(self.files, self.sha256, strict=True):
            raw = rel.encode()
            h.update(len(raw).to_bytes(4, "big") + raw + bytes.fromhex(sha))
        return h.hexdigest()

    def save(self, path: Path) -> None:
        write_compact(path, {"files": list(self.files), "sha256": list(self.sha256)})


def write_compact(path: Path, obj: Any) -> None:
    """Atomic, compact JSON: an index of 100k files stays a few megabytes."""
    atomic.write_text(path, json.dumps(obj, separators=(",", ":")) + "\n")


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _stat_cache_path(store: Path, root: Path) -> Path:
    name = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:24]
    return store / "hashes" / f"{name}.json"


def _read_stat_cache(path: Path | None) -> dict[str, list]:
    if path is None or not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # a cache only: a bad one is rebuilt
    if not isinstance(raw, dict) or raw.get("version") != _STAT_CACHE_VERSION:
        return {}
    entries = raw.get("files")
    return entries if isinstance(entries, dict) else {}


#: This process's stat facts per folder: preflight hashes, the run reuses (same process).
_MEMO: dict[str, dict[str, list]] = {}
_HASHED: dict[str, int] = {}  # files of a folder this process has read to hash them


def files_hashed(root: Path) -> int:
    """How many files of `root` this process has read to hash, all scans together: the
    folder's size for a run that hashed it (once: the scans after the first reuse the
    hashes), 0 for a sweep's run (the sweep's preflight hashed it into the stat cache)."""
    return _HASHED.get(str(Path(root).resolve()), 0)


def scan(
    root: Path,
    paths: Sequence[Path],
    *,
    store: Path | None = None,
    workers: int | None = None,
    setting: str = "data.path",
    persist: bool = True,
) -> Listing:
    """Hash every file (in parallel, reusing the stat cache) and check its header.

    `persist=False` writes nothing (preflight: bad input leaves nothing behind); the
    hashes stay in this process until `persist_stat_cache` writes them.
    """
    root = Path(root)
    where = f"{setting} {root}"
    rels = [_nfc(p.relative_to(root).as_posix()) for p in paths]
    cache_path = _stat_cache_path(store, root) if store is not None else None
    on_disk = _read_stat_cache(cache_path)
    cached = {**on_disk, **_MEMO.get(str(root.resolve()), {})}
    fresh: dict[str, list] = {}
    problems: dict[int, str] = {}
    out: list[tuple[str, bool]] = [("", False)] * len(paths)
    todo: list[tuple[int, os.stat_result]] = []
    for i, (p, rel) in enumerate(zip(paths, rels, strict=True)):  # stat: cheap, no threads
        try:
            st = os.stat(p)
        except OSError as err:
            problems[i] = f"{where}: {rel} cannot be read ({err.strerror or err})"
            continue
        hit = cached.get(rel)
        if hit is not None and hit[:4] == _stat_key(st):
            fresh[rel] = hit
            out[i] = (hit[4], bool(hit[5]))
        else:
            todo.append((i, st))

    def hash_one(k: int) -> None:
        i, st = todo[k]
        rel = rels[i]
        try:
            data = paths[i].read_bytes()
        except OSError as err:
            problems[i] = f"{where}: {rel} cannot be read ({err.strerror or err})"
            return
        sha = hashlib.sha256(data).hexdigest()
        problem, gray = header_problem(data)
        if problem is not None:
            problems[i] = f"{where}: {rel} {problem}"
            return
        fresh[rel] = [*_stat_key(st), sha, gray]
        out[i] = (sha, gray)

    _HASHED[str(root.resolve())] = files_hashed(root) + len(todo)
    with Progress("data: hashing files", len(todo)) as bar:
        for _ in ordered_map(hash_one, len(todo), workers or default_workers()):
            bar.update()
    if problems:
        raise InputError([problems[i] for i in sorted(problems)][:20])
    _MEMO[str(root.resolve())] = fresh
    if persist and cache_path is not None and fresh != on_disk:
        with contextlib.suppress(OSError):  # a cache only
            write_compact(cache_path, {"version": _STAT_CACHE_VERSION, "files": fresh})
    return Listing(tuple(rels), tuple(s for s, _ in out), tuple(g for _, g in out))


def persist_stat_cache(root: Path, store: Path) -> None:
    """Write what this process hashed of `root` into the store's stat cache."""
    fresh = _MEMO.get(str(Path(root).resolve()))
    if fresh:
        with contextlib.suppress(OSError):  # a cache only
            path = _stat_cache_path(store, Path(root))
            write_compact(path, {"version": _STAT_CACHE_VERSION, "files": fresh})


def decoder_name() -> str:
    import cv2

    return f"opencv {cv2.__version__}"


@dataclass(frozen=True)
class ImageIndex:
    """What the data stage records for an image folder; its fingerprint is the stage's."""

    root: str
    class_names: tuple[str, ...]
    files: tuple[str, ...]
    labels: tuple[int, ...]
    sha256: tuple[str, ...]
    decode: dict[str, Any]

    @property
    def size(self) -> int:
        return int(self.decode["image_size"])

    @property
    def channels(self) -> int:
        return int(self.decode["channels"])

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, self.channels)

    def __len__(self) -> int:
        return len(self.files)

    def label_array(self) -> np.ndarray:
        return np.asarray(self.labels, dtype=np.int32)

    def content(self) -> dict[str, Any]:
        """Everything the fingerprint covers (not where the folder is)."""
        return {
            "version": INDEX_VERSION,
            "class_names": list(self.class_names),
            "files": list(self.files),
            "labels": list(self.labels),
            "sha256": list(self.sha256),
            "decode": self.decode,
        }

    @property
    def fingerprint(self) -> str:
        return fingerprint_json(self.content())

    def save(self, store: Path) -> Path:
        path = Path(store) / "indexes" / f"{self.fingerprint}.json"
        write_compact(path, {"root": self.root, **self.content()})
        return path

    @classmethod
    def load(cls, path: Path) -> ImageIndex:
        raw = json.loads(Path(path).read_text())
        return cls(
            root=raw["root"],
            class_names=tuple(raw["class_names"]),
            files=tuple(raw["files"]),
            labels=tuple(int(v) for v in raw["labels"]),
            sha256=tuple(raw["sha256"]),
            decode=dict(raw["decode"]),
        )

    def listing(self) -> Listing:
        return Listing(self.files, self.sha256, ())


def decode_settings(image_size: int, channels: int) -> dict[str, Any]:
    """How files become pixels: recorded in the index, part of its fingerprint."""
    return {
        "image_size": image_size,
        "channels": channels,
        "color": "gray" if channels == 1 else "RGB (gray repeated, alpha dropped)",
        "depth": "uint8 (16-bit images scaled to 8 bits by the decoder)",
        "exif_orientation": "ignored",
        "resize": "cv2.INTER_AREA to image_size x image_size, none when already that size",
        "scale": "float32 x / 255",
        "decoder": decoder_name(),
    }


def build_index(
    root: Path,
    image_size: int,
    *,
    store: Path | None = None,
    workers: int | None = None,
    setting: str = "data.path",
    persist: bool = True,
) -> ImageIndex:
    """Index a folder of class subfolders: list, hash (parallel, streaming), check headers."""
    root = Path(root)
    class_names, paths = list_images(root, setting)
    listing = scan(root, paths, store=store, workers=workers, setting=setting, persist=persist)
    labels = tuple(class_names.index(rel.split("/", 1)[0]) for rel in listing.files)
    channels = 1 if all(listing.gray) else 3
    return ImageIndex(
        root=str(root),
        class_names=class_names,
        files=listing.files,
        labels=labels,
        sha256=listing.sha256,
        decode=decode_settings(image_size, channels),
    )


def _names(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def diff_listings(a: Listing, b: Listing) -> list[str]:
    """What changed from listing a to b, one line each: "data: 1 file changed: cat/0042.jpg"."""
    sa, sb = dict(zip(a.files, a.sha256, strict=True)), dict(zip(b.files, b.sha256, strict=True))
    changed = [f for f in sa if f in sb and sa[f] != sb[f]]
    added = [f for f in sb if f not in sa]
    removed = [f for f in sa if f not in sb]
    out = []
    for what, items in (("changed", changed), ("added", added), ("removed", removed)):
        if items:
            s = "" if len(items) == 1 else "s"
            out.append(f"data: {len(items)} file{s} {what}: {_names(items)}")
    return out


def load_listing(path: Path) -> Listing | None:
    """A stored listing, or None when it is gone or unreadable (then only the hash differs)."""
    try:
        raw = json.loads(Path(path).read_text())
        return Listing(tuple(raw["files"]), tuple(raw["sha256"]), ())
    except (OSError, ValueError, KeyError, TypeError):
        return None
