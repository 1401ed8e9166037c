"""What a run takes from the user's project, identified by content before anything runs.

- `model.builder`, `data.loader`: the source of the module and of the project modules it
  imports (seedtrail/inputs/user_code.py), per module;
- `data.path` with kind=images: the sorted file list and every file's bytes;
- `augment.pipeline`: the file's bytes.

One name for this content throughout: *user inputs* (the manifest's `user_inputs`, a
stage's `user_inputs` argument, `builder_inputs`). `identify(settings)` imports and
decodes nothing, so it is cheap on a cached rerun. Each section's user inputs
(`data_inputs`, `model_inputs`, `augment_inputs`) go into the cache key of the stages
that read them (`key_inputs`), the whole into the manifest's `user_inputs`, and
`changes` turns two manifests' user inputs into causes
such as "model code changed (module examples.blocks)". A reference that cannot work
(no such module or function, an empty class folder, an unreadable pipeline file) fails
here, as one line naming the setting.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seedtrail.core.errors import InputError
from seedtrail.inputs import image_folder, index
from seedtrail.inputs.user_code import changed_modules, fingerprint_code

if TYPE_CHECKING:
    from settings.model import AugmentSettings, DataSettings, ModelSettings, RunSettings

SECTION = "user_inputs"  # the manifest key

UserInputs = dict[str, dict[str, Any]]  # setting name -> {"sha256": ..., and what it describes}


def _code(ref: str, setting: str) -> UserInputs:
    fp = fingerprint_code(ref, setting)
    return {setting: {"ref": ref, "sha256": fp.digest, "modules": dict(fp.modules)}}


def data_inputs(
    s: DataSettings,
    store: Path | None = None,
    write: bool = True,
    listing: index.Listing | None = None,
) -> UserInputs:
    """The user's loader code (kind=python) or image files (kind=images), by content.

    With a store, the files' hashes come from (and go to) its stat cache, and the list of
    files and hashes is kept there (`listing`), so compare can name a changed file. A
    `listing` just made (preflight's index) saves listing and checking the folder again.
    """
    if s.kind == "python" and s.loader is not None:
        return _code(s.loader, "data.loader")
    if s.kind == "images" and s.path is not None:
        root = Path(s.path)
        if listing is None:
            _, files = image_folder.list_images(root)
            listing = index.scan(root, files, store=store, workers=s.workers, persist=write)
        sha = listing.content_sha256()
        record: dict[str, Any] = {"path": str(root), "sha256": sha, "files": len(listing.files)}
        if store is not None and write:
            where = Path(store) / "listings" / f"{sha}.json"
            try:
                if not where.is_file():
                    listing.save(where)
                record["listing"] = str(where.resolve())
            except OSError:
                pass  # compare then names the folder, not the file
        return {"data.path": record}
    return {}


def model_inputs(s: ModelSettings) -> UserInputs:
    """The user's model builder code, by content."""
    return _code(s.builder, "model.builder") if s.builder is not None else {}


def augment_inputs(s: AugmentSettings) -> UserInputs:
    """The user's augmentation pipeline file, by content."""
    if s.pipeline is None:
        return {}
    try:
        sha = hashlib.sha256(Path(s.pipeline).read_bytes()).hexdigest()
    except OSError as err:
        raise InputError(
            f"augment.pipeline {s.pipeline}: cannot read ({err.strerror or type(err).__name__})"
        ) from None
    return {"augment.pipeline": {"path": str(s.pipeline), "sha256": sha}}


def identify(
    settings: RunSettings, write: bool = True, listing: index.Listing | None = None
) -> UserInputs:
    """Everything the settings bring in from the user: the manifest's `user_inputs`.

    `write=False` (preflight) leaves the store alone: bad input leaves nothing behind.
    """
    from seedtrail.core.store import store_dir

    return {
        **data_inputs(settings.data, store_dir(settings.output_dir), write, listing),
        **model_inputs(settings.model),
        **augment_inputs(settings.augment),
    }


def key_inputs(record: UserInputs) -> dict[str, str]:
    """Extra cache-key inputs of a stage that reads these user inputs: setting -> sha256."""
    return {setting: r["sha256"] for setting, r in sorted(record.items())}


_WHAT = {
    "model.builder": "model code",
    "data.loader": "data loader code",
    "data.path": "image files",
    "augment.pipeline": "augmentation pipeline file",
}


def changes(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Causes from two manifests' `user_inputs` records, e.g. 'model code changed (module x.y)'."""
    out = []
    for key, what in _WHAT.items():
        ra, rb = a.get(key) or {}, b.get(key) or {}
        if ra.get("sha256") == rb.get("sha256"):
            continue
        if key == "data.path" and (files := _changed_files(ra, rb)):
            out += files
            continue
        if "modules" in ra and "modules" in rb:
            names = changed_modules(ra["modules"], rb["modules"])
            where = f"module{'s' if len(names) > 1 else ''} {', '.join(names)}"
        else:
            where = str(rb.get("path") or ra.get("path") or key)
        out.append(f"{what} changed ({where})")
    return out


def _changed_files(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """ "data: 1 file changed: cat/0042.jpg" from two stored listings ([] if one is gone)."""
    la = index.load_listing(Path(a["listing"])) if a.get("listing") else None
    lb = index.load_listing(Path(b["listing"])) if b.get("listing") else None
    if la is None or lb is None:
        return []
    return index.diff_listings(la, lb)
