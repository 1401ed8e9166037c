"""Never redo, never lose: the stage cache, checkpoints, resume after kill -9 and Ctrl-C, retries."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from settings import DataSettings, RunSettings, TrainingSettings
from tests.conftest import (
    TINY,
    TinyRun,
    TinyRuns,
    finish,
    run_module,
    start_module,
    train_in_process,
)

# Every test here starts Prefect or a Python process, or trains for real.
pytestmark = pytest.mark.slow

# Long enough per epoch that a kill lands inside training, small enough to stay quick.
SIX_EPOCHS = ("--data.n-samples", "600", "--training.epochs", "6")
# Runs long enough to be stopped in training, in K = 2 shards on one inter-op thread: one
# uninterrupted reference run (`six_epochs_k2`) serves the kill -9 resume here, the Ctrl-C
# resume (test_signals) and the inter-op thread test (test_shards).
SIX_EPOCHS_K2 = (*SIX_EPOCHS, "--training.shards", "2", "--determinism.inter-op-threads", "1")


def six_epochs_k2(tiny_runs: TinyRuns) -> TinyRun:
    """The uninterrupted reference run of SIX_EPOCHS_K2 (shared by the session)."""
    return tiny_runs.get(six_epochs_k2=SIX_EPOCHS_K2)["six_epochs_k2"]


def _cached(manifest: dict) -> dict[str, bool]:
    return {k: v["cached"] for k, v in manifest["stages"].items()}


def test_identical_rerun_reuses_every_stage(prefect_server: None, settings: RunSettings) -> None:
    first = train_in_process(settings)
    second = train_in_process(settings)
    assert not any(_cached(first).values())
    assert _cached(second) == {s: s != "environment" for s in first["stages"]}
    for stage, st in first["stages"].items():
        assert second["stages"][stage]["fingerprint"] == st["fingerprint"], stage
    assert second["metrics"] == first["metrics"]
    run_dir = Path(second["run_dir"])
    for name in ("model.keras", "metrics.json", "training_curves.png", "augment_preview.png"):
        assert (run_dir / name).is_file(), f"{name} not materialized from the cache"


def test_changing_only_epochs_reuses_what_does_not_depend_on_it(
    prefect_server: None, settings: RunSettings
) -> None:
    train_in_process(settings)
    more = settings.model_copy(update={"training": TrainingSettings(epochs=3)})
    cached = _cached(train_in_process(more))
    # data, augment, split and the initial weights do not depend on training settings
    assert cached == {
        "environment": False, "data": True, "augment": True, "split": True,
        "model": True, "train": False, "evaluate": False,
    }  # fmt: skip
    other_seed = settings.model_copy(update={"seed": 1})
    assert not any(_cached(train_in_process(other_seed)).values())
    assert not any(_cached(train_in_process(settings, use_cache=False)).values())


def test_corrupted_cache_file_is_detected_and_recomputed(
    prefect_server: None, settings: RunSettings
) -> None:
    first = train_in_process(settings)
    arrays = Path(first["stages"]["data"]["outputs"]["arrays"])
    blob = bytearray(arrays.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    arrays.write_bytes(bytes(blob))
    (Path(first["run_dir"]) / "metrics.json").unlink()  # the run's own copy is not the cache
    second = train_in_process(settings)
    assert second["stages"]["data"]["cached"] is False  # rejected, recomputed
    assert second["stages"]["data"]["fingerprint"] == first["stages"]["data"]["fingerprint"]
    assert second["stages"]["evaluate"]["cached"] is True
    assert second["stages"]["train"]["fingerprint"] == first["stages"]["train"]["fingerprint"]


def _labelled_csv(path: Path, names: tuple[str, str]) -> Path:
    rows = [f"{i % 7},{(i * 3) % 5},{names[i % 2]}" for i in range(80)]
    path.write_text("a,b,label\n" + "\n".join(rows) + "\n")
    return path


def test_label_names_alone_never_give_a_stale_cached_evaluate(
    prefect_server: None, settings: RunSettings, tmp_path: Path
) -> None:
    """Same data bytes, other class names: evaluate must report the new names."""
    runs = []
    for names in (("cat", "dog"), ("ant", "bee")):
        data = DataSettings(kind="file", path=_labelled_csv(tmp_path / f"{names[0]}.csv", names))
        runs.append(train_in_process(settings.model_copy(update={"data": data})))
    cats, ants = runs
    assert ants["stages"]["data"]["fingerprint"] == cats["stages"]["data"]["fingerprint"]
    assert sorted(ants["metrics"]["per_class"]) == ["ant", "bee"]
    assert ants["stages"]["evaluate"]["cached"] is False


def test_a_retried_stage_gives_the_same_bytes(
    prefect_server: None, settings: RunSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.data

    clean = train_in_process(settings, stop_after="data", use_cache=False)
    real_put, calls = tasks.data.put_arrays, []

    def flaky_put(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("transient I/O error")
        return real_put(*args, **kwargs)

    monkeypatch.setattr(tasks.data, "put_arrays", flaky_put)
    retried = train_in_process(settings, stop_after="data", use_cache=False)
    assert len(calls) == 2
    assert retried["stages"]["data"]["fingerprint"] == clean["stages"]["data"]["fingerprint"]


def _wait_for_checkpoint(output_dir: Path, epochs_done: int, timeout: float = 240) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pointer in output_dir.glob("*/checkpoints/latest.json"):
            try:
                if json.loads(pointer.read_text())["epochs_done"] >= epochs_done:
                    return pointer.parent.parent
            except (OSError, ValueError):
                pass  # being replaced right now
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def test_resume_refuses_a_complete_run_and_a_non_run(tmp_path: Path, tiny_runs: TinyRuns) -> None:
    done = tiny_runs.get(base=())["base"].run_dir
    for target, expected in ((done, "already complete"), (tmp_path, "not a run directory")):
        res = run_module(
            "flows.train", ["--resume", str(target)], cwd=tmp_path, prefect_home=tmp_path / "h"
        )
        assert res.returncode == 2
        assert res.stderr.strip().count("\n") == 0 and expected in res.stderr


def _epochs_done(output_dir: Path) -> tuple[Path, int] | None:
    for pointer in output_dir.glob("*/checkpoints/latest.json"):
        try:
            return pointer.parent.parent, int(json.loads(pointer.read_text())["epochs_done"])
        except (OSError, ValueError, KeyError):
            return None  # being replaced right now
    return None


def _killed_in_training(
    tmp_path: Path, api: dict[str, str], args: tuple[str, ...]
) -> tuple[Path, int]:
    """The reference's settings, killed -9 once 2 epochs are done: (run directory, epochs done).

    With PREFECT_API_URL set (the user's own server) the command starts no server of its
    own; its kill -9 leaves nothing running and stops no server."""
    import urllib.request

    from tests.test_prefect_server import GONE_DEADLINE_S, _watchdogs
    from tests.test_signals import _processes_with_home, _wait_until

    home = tmp_path / "home0"
    proc = start_module(
        "flows.train", [*TINY, *args, "--output-dir", str(tmp_path / "s0")],
        cwd=tmp_path, prefect_home=home, env=api,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            state = _epochs_done(tmp_path / "s0")
            if state is not None and state[1] >= 2:
                assert not _watchdogs(home)  # no temporary server of its own
                proc.send_signal(signal.SIGKILL)
                finish(proc)
                assert _wait_until(lambda: not _processes_with_home(home), GONE_DEADLINE_S)
                with urllib.request.urlopen(f"{api['PREFECT_API_URL']}/health", timeout=10) as r:
                    assert r.status == 200  # the user's server still serves
                # read again after the kill: an epoch may have been committed in between
                while (state := _epochs_done(tmp_path / "s0")) is None:
                    time.sleep(0.01)
                return state
            assert proc.poll() is None, "the run ended before it was killed"
            time.sleep(0.02)
    finally:
        proc.kill()
    raise AssertionError("no checkpoints appeared")


def test_kill_9_then_resume_uses_only_a_checkpoint_it_wrote_and_is_bit_identical(
    tmp_path: Path, tiny_runs: TinyRuns
) -> None:
    """A run killed -9 in training, with K = 2 shards per batch (issue 23), then resumed
    with its latest checkpoint corrupted (one byte flipped).

    Before: tracebacks and SIGSEGV (a corrupted .keras crashed Keras' loader); a valid Keras
    file of the same architecture swapped in resumed silently to other final weights. Now
    every checkpoint file is hashed against what was written before Keras reads it: the bad
    one is rejected in one line (the same check and line for a swapped file, so the swap is
    tested in-process: tests/test_checkpoint.py, with another seed's checkpoint and with
    weights that are not the recorded ones), the one before is used, and the run ends with
    an uninterrupted run's bytes, epoch by epoch and batch by batch. A resume from an intact
    latest checkpoint: a Ctrl-C'd sweep's rerun (tests/test_run_lock.py) and JAX's
    (tests/test_backends.py).
    """
    args = SIX_EPOCHS_K2
    reference = six_epochs_k2(tiny_runs).manifest
    api = {"PREFECT_API_URL": tiny_runs.api_url}
    run_dir, done = _killed_in_training(tmp_path, api, args)
    interrupted = json.loads((run_dir / "manifest.json").read_text())  # must parse: atomic
    assert interrupted["status"] == "running"  # never mistaken for finished
    assert "train" not in interrupted["stages"]
    stem = f"epoch-{done:04d}"
    keras_file = run_dir / "checkpoints" / f"{stem}.keras"
    data = bytearray(keras_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    keras_file.write_bytes(bytes(data))

    res = run_module(
        "flows.train", ["--resume", str(run_dir)],
        cwd=tmp_path, prefect_home=tmp_path / "home0", env=api,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    notices = [
        line for line in (res.stdout + res.stderr).splitlines() if "rejected checkpoint" in line
    ]
    assert len(notices) == 1, notices
    assert f"{stem} ({stem}.keras changed since it was written)" in notices[0]
    assert f"resuming after epoch {done - 1}" in notices[0]
    assert "Traceback" not in res.stderr
    final = json.loads((run_dir / "manifest.json").read_text())
    assert final["status"] == "complete"
    assert final["stages"]["train"]["info"]["resumed_after_epoch"] == done - 1
    for stage in ("train", "evaluate"):
        assert final["stages"][stage]["fingerprint"] == reference["stages"][stage]["fingerprint"]
    # the per-epoch, per-batch and per-variable records continue across the resume point
    for record in ("epoch_fingerprints", "batch_losses", "variable_fingerprints"):
        got, want = final["stages"]["train"]["info"], reference["stages"]["train"]["info"]
        assert len(want[record]) == 6 and got[record] == want[record], record
    assert final["metrics"] == reference["metrics"]
