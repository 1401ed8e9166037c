"""Environment stage: pin threads and op determinism before the first TF op, seed, and record the stack.

Its fingerprint covers everything that can change a run's bytes on the same
code (versions, threads, determinism flags, devices, CPU, uv.lock), so a
verify can name the environment as the cause when bytes differ.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from prefect import task

from seedtrail.fingerprint import fingerprint_json, sha256_file
from seedtrail.quiet import import_tensorflow
from seedtrail.stage import StageResult, stopwatch
from settings.model import DeterminismSettings

VERSION = "1"
DETERMINISTIC = True
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "tensorflow",
    "keras",
    "numpy",
    "scikit-learn",
    "albumentations",
    "albucore",
    "opencv-python-headless",
    "prefect",
    "pydantic",
    "pydantic-settings",
    "matplotlib",
)


class RuntimeConfigError(RuntimeError):
    """The TF runtime of this process was already started with other settings."""


def configure_runtime(s: DeterminismSettings, seed: int) -> None:
    """Threads and op determinism (must precede any TF op), then every global seed."""
    tf = import_tensorflow()
    import keras

    threads = tf.config.threading
    try:
        threads.set_intra_op_parallelism_threads(s.intra_op_threads)
        threads.set_inter_op_parallelism_threads(s.inter_op_threads)
    except RuntimeError:
        raise RuntimeConfigError(
            "TensorFlow already runs in this process with intra/inter-op threads "
            f"{threads.get_intra_op_parallelism_threads()}/"
            f"{threads.get_inter_op_parallelism_threads()}; "
            f"determinism.* asks for {s.intra_op_threads}/{s.inter_op_threads}: "
            "run it in a new process"
        ) from None
    if s.op_determinism:
        tf.config.experimental.enable_op_determinism()
    else:
        # No public disable in TF 2.21; the framework function is what enable() flips.
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()
    keras.utils.set_random_seed(seed)  # python `random`, numpy global, TF global


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def capture_environment() -> dict[str, Any]:
    """Everything about this process that can change the bytes of a run."""
    tf = import_tensorflow()
    from tensorflow.python.framework import config as tf_config  # is_op_determinism_enabled

    lock = PROJECT_ROOT / "uv.lock"
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "devices": sorted(f"{d.device_type}:{d.name}" for d in tf.config.list_physical_devices()),
        "packages": {p: _version(p) for p in PACKAGES},
        "determinism": {
            "op_determinism": bool(tf_config.is_op_determinism_enabled()),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "jit_compile": False,
            # oneDNN is on by default on x86 TF builds; "0" turns it off and changes the bytes.
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
            "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "unset"),
        },
        "uv_lock_sha256": sha256_file(lock) if lock.is_file() else None,
    }


# What a run does not depend on: left out of the fingerprint, kept in the manifest.
_VOLATILE = {"platform", "cpu_count"}
_VOLATILE_DETERMINISM = {"PYTHONHASHSEED"}


def stack_fingerprint(env: dict[str, Any]) -> str:
    """Versions only: what non-TF stages (numpy, scikit-learn, albumentations) depend on."""
    return fingerprint_json({k: env[k] for k in ("python", "machine", "packages")})


def environment_fingerprint(env: dict[str, Any]) -> str:
    stable = {k: v for k, v in env.items() if k not in _VOLATILE}
    stable["determinism"] = {
        k: v for k, v in env["determinism"].items() if k not in _VOLATILE_DETERMINISM
    }
    return fingerprint_json(stable)


def run_environment(s: DeterminismSettings, seed: int) -> StageResult:
    with stopwatch() as elapsed:
        configure_runtime(s, seed)
        env = capture_environment()
        fp = environment_fingerprint(env)
    return StageResult(
        "environment",
        seed,
        fp,
        elapsed(),
        info={"environment": env, "stack_fingerprint": stack_fingerprint(env)},
    )


# Never cached: it configures this process's TF runtime, which a cache hit would skip.
@task(name="environment")
def environment_task(s: DeterminismSettings, seed: int) -> StageResult:
    return run_environment(s, seed)
