"""The run directory: `<output_dir>/<run_id>/` with a manifest rewritten atomically as stages finish.

`status` is "running" until the very last write sets "complete"; a run that
failed says "failed", a Ctrl-C "interrupted", and a killed process leaves
"running" — none of them can be mistaken for a finished run.

A process that runs or resumes a run holds an exclusive lock on `<run>/.lock`
(fcntl.flock) for the run's life, so two processes never write one run directory
(two `--resume`s, a sweep rerun while a resume runs). The kernel releases it when
the process ends, `kill -9` included, so a stale lock never blocks a resume.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seedtrail.core import atomic
from seedtrail.core.atomic import probe_writable
from seedtrail.core.errors import InputError
from seedtrail.core.fingerprint import fingerprint_json
from seedtrail.core.stage_result import StageResult
from seedtrail.run import integrity
from seedtrail.run.manifest import COMPLETE, MANIFEST, MANIFEST_VERSION, NotARun, read_json
from settings.model import RunSettings


def settings_fingerprint(settings: RunSettings) -> str:
    """Identity of what a run computes: everything but where its files go and how many
    inter-op threads run its independent ops (which changes no byte: docs/parallelism.md)."""
    return fingerprint_json(
        settings.model_dump(
            mode="json", exclude={"output_dir": True, "determinism": {"inter_op_threads"}}
        )
    )


def new_run_id(seed: int, settings_fp: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-seed{seed}-{settings_fp[:6]}-{secrets.token_hex(2)}"


def check_output_dir(directory: Path, setting: str = "output_dir") -> None:
    """The folder exists (created if need be) and takes a file: found now, before Prefect
    starts (~20 s), not as an OSError traceback at the first write. One line, exit 2."""
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{setting}: {directory} is a file, not a folder")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(
            f"{setting}: cannot create {directory} ({err.strerror or type(err).__name__})"
        ) from None
    try:
        probe_writable(directory)
    except OSError as err:
        raise InputError(
            f"{setting}: cannot write in {directory} ({err.strerror or type(err).__name__})"
        ) from None


LOCK = ".lock"


def _holder(lock: Path) -> str:
    """Who holds a run's lock, from what the holder wrote into it: "pid N" (and its action)."""
    try:
        pid, _, action = lock.read_text().strip().partition(" ")
    except OSError:
        return "being used by another process"
    verb = "resumed" if action == "resume" else "run"
    return f"being {verb} by pid {pid}" if pid.isdigit() else "being used by another process"


def lock_run(path: Path, action: str) -> int:
    """Take the run's lock (held until the fd is closed); InputError if another process has it."""
    lock = Path(path) / LOCK
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:  # not a directory, a read-only one: the run cannot be written
        raise InputError(
            f"run {Path(path).name}: cannot take its lock {lock} ({err.strerror})"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InputError(f"run {Path(path).name} is {_holder(lock)}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {action}\n".encode())
    return fd


def check_not_locked(path: Path) -> None:
    """InputError if a live process holds the run's lock (a quick check before Prefect starts)."""
    lock = Path(path) / LOCK
    if not lock.is_file():
        return
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return  # unreadable: the real lock, taken when the run reopens, decides
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise InputError(f"run {Path(path).name} is {_holder(lock)}") from None
    finally:
        os.close(fd)  # releases the shared lock taken just to look


def is_locked(path: Path) -> bool:
    try:
        check_not_locked(path)
    except InputError:
        return True
    return False


@dataclass
class RunDirectory:
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    lock_fd: int | None = None  # the run's lock, held until finish() or discard()

    @classmethod
    def create(cls, output_dir: Path, run_id: str, header: dict[str, Any]) -> RunDirectory:
        path = Path(output_dir) / run_id
        path.mkdir(parents=True, exist_ok=False)
        run = cls(path=path, lock_fd=lock_run(path, "run"))
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
        lock_fd = lock_run(path, "resume")  # before reading: the holder may still write
        try:
            manifest = read_json(path)
        except BaseException:
            os.close(lock_fd)
            raise
        if manifest["status"] == COMPLETE:
            os.close(lock_fd)
            raise NotARun(f"{path}: run is already complete; nothing to resume")
        run = cls(path=Path(path), manifest=manifest, lock_fd=lock_fd)
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
        try:
            self.save()
        finally:
            self.release()

    def discard(self) -> None:
        """Remove the whole directory (bad input: leave nothing behind)."""
        self.release()
        shutil.rmtree(self.path, ignore_errors=True)

    def release(self) -> None:
        """Let another process resume the run (the file stays: removing it would race)."""
        if self.lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.lock_fd)
            self.lock_fd = None
