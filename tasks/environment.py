"""Environment stage: record the stack and the hardware, and request the TF runtime a run needs.

Its fingerprint covers everything that can change a run's bytes on the same
code (versions, threads, determinism flags, the oneDNN ISA cap, devices, the CPU's
instruction sets and caches, uv.lock), so compare and verify can name the cause
when bytes differ. It imports no TensorFlow: the TF stages configure the runtime
(seedtrail.runtime.tf_runtime) when they actually run, so a cached rerun never loads it.
"""

from __future__ import annotations

import os
import platform
import random
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from seedtrail.core.fingerprint import fingerprint_json, sha256_file
from seedtrail.core.stage import stage
from seedtrail.core.stage_result import StageOutput
from seedtrail.runtime import backends, hardware, tf_runtime
from settings.model import DeterminismSettings

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


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def capture_environment(s: DeterminismSettings, isa_cap: str, onednn_ops: bool) -> dict[str, Any]:
    """Everything about this process that can change the bytes of a run, without TensorFlow.

    Thread counts and op determinism are what `seedtrail.runtime.tf_runtime` will apply (it refuses
    rather than run otherwise); `devices` is checked against TensorFlow's own list there.
    """
    lock = PROJECT_ROOT / "uv.lock"
    cpu = hardware.cpu_facts()
    gpu = hardware.gpu_facts()
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu["model"],
        "cpu_count": os.cpu_count(),
        "cpu": {k: v for k, v in cpu.items() if k != "model"},
        "gpu": gpu,
        "devices": hardware.expected_devices(gpu),
        "packages": {p: _version(p) for p in PACKAGES},
        "determinism": {
            "op_determinism": s.op_determinism,
            "intra_op_threads": s.intra_op_threads,
            # How many independent ops run at once: never a byte (docs/parallelism.md).
            "inter_op_threads": tf_runtime.inter_op_threads(s),
            "jit_compile": backends.jit_compile(s.backend),
            # TensorFlow's oneDNN ops (its default depends on the CPU: hardware.py);
            # set explicitly before TensorFlow loads, checked against TensorFlow's own answer.
            "onednn_ops": "on" if onednn_ops else "off",
            # The ISA oneDNN may use at most; native lets it use the CPU's best.
            "onednn_max_cpu_isa": isa_cap,
            "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "unset"),
        },
        "uv_lock_sha256": sha256_file(lock) if lock.is_file() else None,
        # KERAS_BACKEND and that backend's own flags (XLA_FLAGS, PRNG, torch's switches):
        # in the environment fingerprint, so model, train and evaluate are keyed by it;
        # not in the stack fingerprint, so data, augment and split are shared across backends.
        "keras_backend": backends.record(s.backend, s.intra_op_threads, isa_cap),
    }


# What a run does not depend on: left out of the fingerprint, kept in the manifest.
_VOLATILE = {"platform", "cpu_count"}
_VOLATILE_DETERMINISM = {"PYTHONHASHSEED", "inter_op_threads"}


def stack_fingerprint(env: dict[str, Any]) -> str:
    """Versions only: what non-TF stages (numpy, scikit-learn, albumentations) depend on."""
    return fingerprint_json({k: env[k] for k in ("python", "machine", "packages")})


def environment_fingerprint(env: dict[str, Any]) -> str:
    stable = {k: v for k, v in env.items() if k not in _VOLATILE}
    stable["determinism"] = {
        k: v for k, v in env["determinism"].items() if k not in _VOLATILE_DETERMINISM
    }
    return fingerprint_json(stable)


# Never cached: it requests this process's TF runtime, which a cache hit would skip.
@stage(cacheable=False, env="none")
def run_environment(s: DeterminismSettings, seed: int) -> StageOutput:
    """Record the stack and request its TF runtime; TF loads only when a TF stage runs."""
    random.seed(seed)
    np.random.seed(seed)
    cap = tf_runtime.effective_cap(s)
    env = capture_environment(s, cap, tf_runtime.effective_onednn_ops(s))
    tf_runtime.configure(s, seed, env["devices"])
    return StageOutput(
        environment_fingerprint(env),
        info={"environment": env, "stack_fingerprint": stack_fingerprint(env)},
    )


# --- wiring: how the pipeline feeds this stage (seedtrail/core/wiring.py); not in its code version
def _check(p) -> None:
    """The CPU can run the requested ISA cap: applied now, as a user's loader may import TF."""
    tf_runtime.set_env(p.settings.determinism)


run_environment.wire(check=_check)
