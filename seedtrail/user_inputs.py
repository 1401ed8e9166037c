"""What a run takes from the user's project, identified by content before anything runs.

- `model.builder`, `data.loader`: the source of the module and of the project modules it
  imports (seedtrail/user_code.py), per module;
- `data.path` with kind=images: the sorted file list and every file's bytes;
- `augment.pipeline`: the file's bytes.

`identify(settings)` imports and decodes nothing, so it is cheap on a cached rerun. Each
part goes into the cache key of the stages that read it (`key_inputs`), the whole into
the manifest (`to_manifest`), and `changes` turns two manifests' records into causes
such as "model code changed (module examples.blocks)". A reference that cannot work
(no such module or function, an empty class folder, an unreadable pipeline file) fails
here, as one line naming the setting.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seedtrail import image_folder
from seedtrail.errors import InputError
from seedtrail.user_code import CodeFingerprint, changed_modules, fingerprint_code

if TYPE_CHECKING:
    from settings.model import RunSettings

SECTION = "user_inputs"  # the manifest key


@dataclass(frozen=True)
class UserInputs:
    model_code: CodeFingerprint | None = None  # model.builder
    loader_code: CodeFingerprint | None = None  # data.loader
    image_files: str | None = None  # data.path, kind=images
    n_image_files: int = 0
    pipeline_sha256: str | None = None  # augment.pipeline

    def key_inputs(self, stage: str) -> dict[str, str]:
        """The content hashes that stage `stage` reads: extra inputs of its cache key."""
        wanted = {
            "data": {"loader_code": self.loader_code, "image_files": self.image_files},
            "augment": {"pipeline": self.pipeline_sha256},
            "model": {"builder_code": self.model_code},
            "train": {"pipeline": self.pipeline_sha256},
        }.get(stage, {})
        return {
            name: value.digest if isinstance(value, CodeFingerprint) else value
            for name, value in wanted.items()
            if value is not None
        }

    def to_manifest(self, settings: RunSettings) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.model_code is not None:
            out["model.builder"] = _code(settings.model.builder, self.model_code)
        if self.loader_code is not None:
            out["data.loader"] = _code(settings.data.loader, self.loader_code)
        if self.image_files is not None:
            out["data.path"] = {
                "path": str(settings.data.path),
                "sha256": self.image_files,
                "files": self.n_image_files,
            }
        if self.pipeline_sha256 is not None:
            out["augment.pipeline"] = {
                "path": str(settings.augment.pipeline),
                "sha256": self.pipeline_sha256,
            }
        return out


def _code(ref: str | None, fp: CodeFingerprint) -> dict[str, Any]:
    return {"ref": ref, "sha256": fp.digest, "modules": dict(fp.modules)}


def pipeline_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as err:
        raise InputError(
            f"augment.pipeline {path}: cannot read ({err.strerror or type(err).__name__})"
        ) from None


def identify(settings: RunSettings) -> UserInputs:
    """Fingerprint everything the settings bring in from the user (no import, no decoding)."""
    model_code = loader_code = image_files = pipeline = None
    n_files = 0
    if settings.model.builder is not None:
        model_code = fingerprint_code(settings.model.builder, "model.builder")
    if settings.data.kind == "python" and settings.data.loader is not None:
        loader_code = fingerprint_code(settings.data.loader, "data.loader")
    if settings.data.kind == "images" and settings.data.path is not None:
        root = Path(settings.data.path)
        _, files = image_folder.list_images(root)
        image_files, n_files = image_folder.content_sha256(root, files), len(files)
    if settings.augment.pipeline is not None:
        pipeline = pipeline_sha256(settings.augment.pipeline)
    return UserInputs(model_code, loader_code, image_files, n_files, pipeline)


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
        if "modules" in ra and "modules" in rb:
            names = changed_modules(ra["modules"], rb["modules"])
            where = f"module{'s' if len(names) > 1 else ''} {', '.join(names)}"
        else:
            where = str(rb.get("path") or ra.get("path") or key)
        out.append(f"{what} changed ({where})")
    return out
