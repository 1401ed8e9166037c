"""Image folders as an index, streamed: hashes, the pixel cache, workers that never change bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from seedtrail.core.errors import InputError
from seedtrail.core.fingerprint import fingerprint_arrays
from seedtrail.inputs import index as index_mod
from seedtrail.inputs.image_folder import read_image_folder
from seedtrail.inputs.index import Listing, build_index, diff_listings, scan
from seedtrail.inputs.pixels import DataChanged, build_cache, open_cache, read_file
from seedtrail.inputs.stream import IndexSource
from settings.model import AugmentSettings


def make_folder(root: Path, per_class: int = 6, size: int = 20, gray: bool = False) -> Path:
    """Two classes of random JPEGs and PNGs, different sizes (so some are resized)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            side = size + (i % 3) * 7
            pixels = rng.integers(0, 256, (side, side) if gray else (side, side, 3), np.uint8)
            pixels[: side // 2] //= c + 1  # something a class could be told by
            ext = "png" if i % 2 else "jpg"
            Image.fromarray(pixels).save(root / name / f"{i:04d}.{ext}")
    return root


def test_the_index_records_sorted_files_labels_hashes_and_decode_settings(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs")
    idx = build_index(root, 12)
    assert idx.files == tuple(sorted(idx.files)) and len(idx) == 12
    assert idx.class_names == ("cat", "dog")
    assert idx.labels == tuple(0 if f.startswith("cat/") else 1 for f in idx.files)
    for rel, sha in zip(idx.files, idx.sha256, strict=True):
        assert sha == hashlib.sha256((root / rel).read_bytes()).hexdigest()
    assert idx.decode["image_size"] == 12 and idx.channels == 3
    assert build_index(make_folder(tmp_path / "gray", gray=True), 12).channels == 1
    before = idx.fingerprint
    assert build_index(root, 12).fingerprint == before  # a function of the files
    assert build_index(root, 16).fingerprint != before  # and of the decode settings
    (root / "dog" / "0003.png").write_bytes((root / "cat" / "0003.png").read_bytes())
    assert build_index(root, 12).fingerprint != before


def test_the_stat_cache_saves_hashing_and_a_changed_file_is_hashed_again(tmp_path: Path) -> None:
    root, store = make_folder(tmp_path / "imgs"), tmp_path / "store"
    _, paths = index_mod.list_images(root)
    first = scan(root, paths, store=store)
    (cache_file,) = (store / "hashes").glob("*.json")
    cached = json.loads(cache_file.read_text())
    cached["files"]["cat/0000.jpg"][4] = "0" * 64  # what a rescan would trust unread
    cache_file.write_text(json.dumps(cached))
    index_mod._MEMO.clear()  # as a new process (a sweep's next seed) finds it
    assert scan(root, paths, store=store).sha256[0] == "0" * 64  # stat unchanged: not reread
    target = root / "cat" / "0000.jpg"
    target.write_bytes(target.read_bytes())  # same bytes, new mtime/ctime: hashed again
    assert scan(root, paths, store=store).sha256 == first.sha256


def test_a_truncated_jpeg_or_a_non_image_is_one_line_naming_the_file(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs")
    jpg = root / "dog" / "0002.jpg"
    jpg.write_bytes(jpg.read_bytes()[: len(jpg.read_bytes()) // 2])
    (root / "cat" / "0004.jpg").write_bytes(b"not an image at all")
    with pytest.raises(InputError) as err:
        build_index(root, 12)
    assert err.value.problems == [
        f"data.path {root}: cat/0004.jpg cannot be decoded as a PNG or JPEG image",
        f"data.path {root}: dog/0002.jpg is a truncated JPEG (no end-of-image marker after "
        "its last scan)",
    ]


def test_streamed_pixels_equal_the_in_memory_reader(tmp_path: Path) -> None:
    """8-bit images decode to the same float32 values as before: only the record changed."""
    root = make_folder(tmp_path / "imgs")
    idx = build_index(root, 12)
    from_files = IndexSource(idx, None).images(np.arange(len(idx)))
    assert np.array_equal(from_files, read_image_folder(root, 12).x)
    cache = build_cache(tmp_path / "store", idx, workers=2)
    assert np.array_equal(IndexSource(idx, cache).images(np.arange(len(idx))), from_files)
    assert open_cache(tmp_path / "store", idx).fingerprint == cache.fingerprint


def test_a_file_changed_or_deleted_after_indexing_is_named_when_read(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs")
    idx = build_index(root, 12)
    i = idx.files.index("dog/0001.png")
    (root / "dog" / "0001.png").write_bytes((root / "dog" / "0003.png").read_bytes())
    with pytest.raises(DataChanged, match=r"dog/0001\.png changed after indexing"):
        read_file(idx, i)
    (root / "dog" / "0001.png").unlink()
    with pytest.raises(DataChanged, match=r"dog/0001\.png was deleted after indexing"):
        read_file(idx, i)


def test_a_damaged_pixel_cache_is_reported_never_used(tmp_path: Path) -> None:
    idx = build_index(make_folder(tmp_path / "imgs"), 12)
    cache = build_cache(tmp_path / "store", idx)
    raw = bytearray(cache.files.data.read_bytes())
    raw[5 * cache.record + 7] ^= 0xFF
    cache.files.data.write_bytes(bytes(raw))
    damaged = open_cache(tmp_path / "store", idx)
    damaged.read(4)  # other records still read
    with pytest.raises(DataChanged, match=r"record 5 \(.*\) is damaged"):
        damaged.read(5)


def test_compare_names_the_changed_file() -> None:
    a = Listing(("cat/0041.jpg", "cat/0042.jpg", "dog/0001.jpg"), ("a", "b", "c"), ())
    b = Listing(("cat/0041.jpg", "cat/0042.jpg", "dog/0002.jpg"), ("a", "B", "c"), ())
    assert diff_listings(a, b) == [
        "data: 1 file changed: cat/0042.jpg",
        "data: 1 file added: dog/0002.jpg",
        "data: 1 file removed: dog/0001.jpg",
    ]
    assert diff_listings(a, a) == []


@pytest.mark.usefixtures("tensorflow_as_runs_configure_it")
def test_workers_and_the_pixel_cache_never_change_the_bytes(tmp_path: Path) -> None:
    """Every augmented batch of an epoch, fed through Keras' own enqueuer (predict on an
    identity model), is byte-identical with 1, 2 and 4 worker threads, cached or not."""
    import keras

    from seedtrail.inputs.stream import batches
    from tasks.augment import batch_augmenter, epoch_words

    idx = build_index(make_folder(tmp_path / "imgs", per_class=20), 12)
    cache = build_cache(tmp_path / "store", idx)
    order = np.random.default_rng(1).permutation(len(idx))
    words = epoch_words(123, 2, len(idx))
    identity = keras.Sequential([keras.Input(idx.sample_shape), keras.layers.Flatten()])

    def epoch_bytes(workers: int, source: IndexSource) -> str:
        ds = batches(
            source, order, 5, workers=workers, words=words,
            make_augmenter=lambda: batch_augmenter(AugmentSettings()),
        )  # fmt: skip
        return fingerprint_arrays({"x": np.asarray(identity.predict(ds, verbose=0))})

    got = {w: epoch_bytes(w, IndexSource(idx, cache)) for w in (1, 2, 4)}
    got["files"] = epoch_bytes(2, IndexSource(idx, None))
    assert len(set(got.values())) == 1, got
    plain = epoch_bytes(1, IndexSource(idx, cache))
    assert plain == got[1]
    # and the augmentation did something: not the bare pixels
    bare = IndexSource(idx, cache).images(order).reshape(len(idx), -1)
    assert fingerprint_arrays({"x": bare}) != plain


def test_to_float_gives_the_bytes_of_astype_then_divide() -> None:
    from seedtrail.inputs.stream import SCALE, to_float

    pixels = np.arange(256, dtype=np.uint8).reshape(4, 8, 8, 1)
    got = to_float(pixels)
    assert got.dtype == np.float32 and got.shape == pixels.shape
    assert got.tobytes() == (pixels.astype(np.float32) / SCALE).tobytes()


def test_a_cache_record_read_into_a_batch_equals_a_single_read(tmp_path: Path) -> None:
    idx = build_index(make_folder(tmp_path / "imgs"), 12)
    cache = build_cache(tmp_path / "store", idx)
    out = np.zeros((3, *idx.sample_shape), np.uint8)
    for j, i in enumerate((7, 0, 11)):
        cache.read_into(i, out[j])
        assert np.array_equal(out[j], read_file(idx, i))


@pytest.mark.usefixtures("tensorflow_as_runs_configure_it")
def test_keras_shape_reads_are_not_computed_twice(tmp_path: Path) -> None:
    """Keras reads the first batches to learn their shapes, then its workers read them again:
    each batch of a pass is computed once, and a second pass gives the same bytes."""
    import keras

    from seedtrail.inputs.stream import batches

    idx = build_index(make_folder(tmp_path / "imgs", per_class=10), 12)
    source = IndexSource(idx, build_cache(tmp_path / "store", idx))
    computed: list[int] = []
    images = source.images

    def counting(indices: np.ndarray) -> np.ndarray:
        computed.append(len(indices))
        return images(indices)

    source.images = counting  # type: ignore[method-assign]
    ds = batches(source, np.arange(len(idx)), 4, workers=2)
    identity = keras.Sequential([keras.Input(idx.sample_shape), keras.layers.Flatten()])
    first = np.asarray(identity.predict(ds, verbose=0))
    assert len(computed) == len(ds) == 5
    again = np.asarray(identity.predict(ds, verbose=0))
    assert len(computed) == 2 * len(ds) and first.tobytes() == again.tobytes()
    assert first.tobytes() == images(np.arange(len(idx))).reshape(len(idx), -1).tobytes()


# --- whole runs on the streaming path (Prefect, real training) ----------------------------------


def _images_settings(tmp_path: Path, root: Path, **data: object):
    from settings import DataSettings, ModelSettings, RunSettings, SplitSettings, TrainingSettings

    return RunSettings(
        output_dir=tmp_path / "runs",
        data=DataSettings(kind="images", path=root, image_size=12, **data),
        split=SplitSettings(test_size=0.25, val_size=0.25),
        model=ModelSettings(conv_filters=(4,), dense_units=8),
        training=TrainingSettings(epochs=2, batch_size=8),
    )


def _fingerprints(manifest: dict) -> dict[str, str]:
    return {k: v["fingerprint"] for k, v in manifest["stages"].items()}


@pytest.mark.slow
def test_an_image_folder_run_records_an_index_and_workers_never_change_its_bytes(
    prefect_server: None, tmp_path: Path
) -> None:
    from tests.conftest import train_in_process

    root = make_folder(tmp_path / "imgs", per_class=12)
    one = train_in_process(_images_settings(tmp_path, root, workers=1))
    four = train_in_process(
        _images_settings(tmp_path, root, workers=4, cache=False), use_cache=False
    )
    assert _fingerprints(one) == _fingerprints(four)
    data = one["stages"]["data"]
    assert data["fingerprint"] == build_index(root, 12).fingerprint
    assert Path(data["outputs"]["index"]).stat().st_size < 8192  # kilobytes, not pixels
    assert not list((tmp_path / "runs" / ".store").glob("arrays/*.npz")) or all(
        "x" not in np.load(p).files for p in (tmp_path / "runs" / ".store").glob("arrays/*.npz")
    )


@pytest.mark.slow
def test_a_file_changed_during_training_fails_the_run_and_resume_continues_once_restored(
    prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.train
    from seedtrail.compare.explanation import compare_manifests
    from tests.conftest import train_in_process

    root = make_folder(tmp_path / "imgs", per_class=12)
    reference = train_in_process(_images_settings(tmp_path / "ref", root, cache=False))
    split = np.load(reference["stages"]["split"]["outputs"]["indices"])
    index = build_index(root, 12)
    rel = index.files[int(split["train"][0])]  # read in every epoch
    victim, other = root / rel, root / index.files[int(split["train"][1])]
    original = victim.read_bytes()
    real_save = tasks.train.save_checkpoint

    def save_then_edit(*args, **kwargs):  # the file changes after epoch 1's checkpoint
        real_save(*args, **kwargs)
        victim.write_bytes(other.read_bytes())

    monkeypatch.setattr(tasks.train, "save_checkpoint", save_then_edit)
    settings = _images_settings(tmp_path, root, cache=False)
    with pytest.raises(InputError) as err:
        train_in_process(settings)
    assert err.value.problems == [
        f"data.path {root}: {rel} changed after indexing (sha256 differs); "
        "restore it (or rerun to re-index)"
    ]
    (run_dir,) = (tmp_path / "runs").glob("2*")
    failed = json.loads((run_dir / "manifest.json").read_text())
    assert failed["status"] == "failed" and rel in failed["error"]

    monkeypatch.setattr(tasks.train, "save_checkpoint", real_save)
    victim.write_bytes(original)
    resumed = train_in_process(settings, resume=str(run_dir))
    assert resumed["status"] == "complete"
    assert resumed["stages"]["train"]["info"]["resumed_after_epoch"] == 1
    assert _fingerprints(resumed) == _fingerprints(reference)  # bit-exact after the resume
    assert (
        resumed["stages"]["train"]["info"]["epoch_fingerprints"]
        == reference["stages"]["train"]["info"]["epoch_fingerprints"]
    )

    # and compare names the file when it differs between two runs
    victim.write_bytes(other.read_bytes())
    changed = train_in_process(_images_settings(tmp_path / "other", root), stop_after="data")
    assert compare_manifests(reference, changed).user_inputs == [f"data: 1 file changed: {rel}"]


@pytest.mark.slow
def test_an_undecodable_png_stops_the_run_before_training_leaving_nothing(
    prefect_server: None, tmp_path: Path
) -> None:
    from flows.train import main

    root = make_folder(tmp_path / "imgs", per_class=12)
    png = (root / "cat" / "0001.png").read_bytes()
    (root / "cat" / "0001.png").write_bytes(png[:60])  # the header parses, the pixels do not
    out = tmp_path / "runs"
    argv = ["--data.kind", "images", "--data.path", str(root), "--output-dir", str(out)]
    with pytest.raises(InputError) as err:
        main(argv)
    assert err.value.problems == [
        f"data.path {root}: cat/0001.png cannot be decoded as a PNG or JPEG image"
    ]
    assert not list(out.glob("2*"))  # no run directory


def test_npz_arrays_are_memory_mapped_where_stored_uncompressed(tmp_path: Path) -> None:
    from seedtrail.core.fingerprint import fingerprint_arrays
    from seedtrail.core.store import load_arrays, put_arrays, read_npz

    arrays = {
        "x": np.random.default_rng(0).random((50, 4, 4, 3), dtype=np.float32),
        "y": np.arange(50, dtype=np.int32),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "files": np.array(["a.png", "bé.jpg"]),
    }
    fp, path = put_arrays(tmp_path, arrays)
    loaded = load_arrays(path, fp)  # the fingerprint is checked on the mapped bytes
    assert all(isinstance(loaded[k], np.memmap) for k in arrays)
    assert fingerprint_arrays(loaded) == fp
    for k, v in arrays.items():
        assert np.array_equal(loaded[k], v)
    np.savez_compressed(tmp_path / "c.npz", **arrays)  # compressed: loaded, same values
    packed = read_npz(tmp_path / "c.npz")
    assert not any(isinstance(v, np.memmap) for v in packed.values())
    assert fingerprint_arrays(packed) == fp
