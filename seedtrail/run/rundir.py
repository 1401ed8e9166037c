"""The run directory: `<output_dir>/<run_id>/` with a manifest rewritten atomically as stages finish.

`status` is "running" until the very last write sets "complete"; a run that
failed says "failed", a Ctrl-C "interrupted", and a killed process leaves
"running" — none of them can be mistaken for a finished run.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seedtrail.core import atomic
from seedtrail.core.fingerprint import fingerprint_json
from seedtrail.core.stage_result import StageResult
from seedtrail.run import integrity
from seedtrail.run.manifest import COMPLETE, MANIFEST, MANIFEST_VERSION, NotARun, read_json
from settings.model import RunSettings


def settings_fingerprint(settings: RunSettings) -> str:
    """Identity of what a run computes: everything but where its files go."""
    return fingerprint_json(settings.model_dump(mode="json", exclude={"output_dir"}))


def new_run_id(seed: int, settings_fp: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-seed{seed}-{settings_fp[:6]}-{secrets.token_hex(2)}"


@dataclass
class RunDirectory:
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, output_dir: Path, run_id: str, header: dict[str, Any]) -> RunDirectory:
        path = Path(output_dir) / run_id
        path.mkdir(parents=True, exist_ok=False)
        run = cls(path=path)
        run.manifest = {
            "manifest_version": MANIFEST_VERSION,
            "run_id": run_id,
            "status": "running",
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **header,
            "stages": {},
            "metrics": {},
            "artifacts": {},
        }
        run.save()
        return run

    @classmethod
    def reopen(cls, path: Path) -> RunDirectory:
        """Continue an unfinished run in place (resume): same id, same directory."""
        manifest = read_json(path)
        if manifest["status"] == COMPLETE:
            raise NotARun(f"{path}: run is already complete; nothing to resume")
        run = cls(path=Path(path), manifest=manifest)
        manifest.setdefault("resumed", []).append(
            {
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "from_status": manifest["status"],
            }
        )
        manifest["status"] = "running"
        manifest.pop("error", None)
        run.save()
        return run

    def save(self) -> None:
        # Sealed on every write: a later edit of the file is refused by every reader.
        self.manifest["manifest_version"] = MANIFEST_VERSION
        self.manifest[integrity.SEAL] = integrity.seal(self.manifest)
        atomic.write_json(self.path / MANIFEST, self.manifest)

    def record_stage(self, result: StageResult) -> None:
        self.manifest["stages"][result.stage] = result.to_manifest()
        self.save()

    def set(self, key: str, value: Any) -> None:
        self.manifest[key] = value
        self.save()

    def add_artifacts(self, outputs: dict[str, str]) -> None:
        """Record artifact paths, relative to the run directory when inside it."""
        for name, p in outputs.items():
            path = Path(p)
            try:
                self.manifest["artifacts"][name] = str(
                    path.resolve().relative_to(self.path.resolve())
                )
            except ValueError:
                self.manifest["artifacts"][name] = str(path)
        self.save()

    def finish(self, status: str, error: str | None = None) -> None:
        self.manifest["status"] = status
        self.manifest["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        if error:
            self.manifest["error"] = error
        self.save()

    def discard(self) -> None:
        """Remove the whole directory (bad input: leave nothing behind)."""
        shutil.rmtree(self.path, ignore_errors=True)
