"""A disk that fills up during a run (issue 24): one line naming the file, exit 1, the run
marked failed, and no half-written file left behind.

A real full disk needs a tiny mount (root only); ENOSPC is raised in-process instead, at
the one place every run file goes through: the atomic writer (seedtrail/core/atomic.py).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from seedtrail.core import atomic
from seedtrail.core.errors import RunFailed
from settings import RunSettings
from tests.conftest import train_in_process


def _full_disk_at(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """os.replace onto a file called `name` fails as a full disk would."""
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _full_disk_at(monkeypatch, "out.json")
    target = tmp_path / "out.json"
    with pytest.raises(RunFailed) as err:
        atomic.write_json(target, {"a": 1})
    assert str(err.value) == f"output_dir: disk full writing {target}"
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert list(tmp_path.iterdir()) == []  # no temp file, no half-written target


def test_other_write_errors_keep_their_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def replace(src, dst):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="I/O error"):
        atomic.write_bytes(tmp_path / "x.bin", b"x")


def test_the_cli_says_a_full_disk_in_one_line_with_exit_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from seedtrail.cli.main import EXIT_FAILED, run_cli

    def main(argv: list[str]) -> int:
        raise RunFailed("output_dir: disk full writing runs/x/history.json")

    with pytest.raises(SystemExit) as exit_:
        run_cli(main, [], handle_signals=False)
    assert exit_.value.code == EXIT_FAILED
    assert capsys.readouterr().err == "error: output_dir: disk full writing runs/x/history.json\n"


@pytest.mark.slow
def test_a_disk_that_fills_during_training_fails_the_run_in_one_line(
    prefect_server: None, settings: RunSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _full_disk_at(monkeypatch, "history.json")  # written by the train stage, after fitting
    with pytest.raises(RunFailed) as err:
        train_in_process(settings)
    (run,) = [p for p in settings.output_dir.iterdir() if p.name != ".store"]
    assert str(err.value) == f"output_dir: disk full writing {run / 'history.json'}"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"] == str(err.value)
    leftovers = [p for p in settings.output_dir.rglob("*") if ".tmp" in p.name]
    assert leftovers == [], leftovers
