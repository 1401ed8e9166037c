"""The Keras backend a run computes with, and what each backend needs for the same bytes.

Keras 3 reads `KERAS_BACKEND` once, when it is first imported, and each backend has its
own determinism switches (keras-team/keras#22621 asked for one switch and got none). So
`determinism.backend` is applied here, before Keras loads, in whichever process builds or
trains (the CLI, sweep and Dask workers, served runs: each runs the environment stage or
its preflight check, which call `apply`), and a process where Keras already runs another
backend is refused in one line instead of training under the wrong one.

- tensorflow: seedtrail.runtime.tf_runtime (threads, op determinism, the oneDNN cap).
- jax: XLA reads `XLA_FLAGS` and JAX its `JAX_*` variables at import. XLA:CPU runs
  Eigen single-threaded (`--xla_cpu_multi_thread_eigen=false`: its contractions may split
  the summed dimension among threads); the PRNG is pinned (threefry2x32, partitionable),
  so a change of JAX's default cannot move a byte; `--xla_gpu_deterministic_ops=true` for
  GPUs. XLA:CPU can cap its LLVM code generation (`--xla_cpu_max_isa`, measured: it
  changes bytes), but its YNNPACK/XNNPACK/oneDNN kernels pick their code at run time
  and ignore the cap (measured: the cap leaves a YNNPACK dot's bytes unchanged), so
  under a cap they are turned off and XLA emits those ops itself (docs/backends.md).
- torch: `torch.use_deterministic_algorithms(True)`, `torch.set_num_threads`, and
  `CUBLAS_WORKSPACE_CONFIG=:4096:8` (cuBLAS on GPUs). torch's CPU code picks its kernels
  by the CPU at run time in three places, each capped under a cap (measured: each changes
  bytes): ATen's own vectorized kernels (`ATEN_CPU_CAPABILITY`), its bundled oneDNN's
  convolutions (`ONEDNN_MAX_CPU_ISA`, the variable the cap already sets for TensorFlow's
  oneDNN) and its bundled MKL's BLAS (`MKL_CBWR`, MKL's fixed code path by name).
  Keras' torch backend keeps seed state as int32, so the seeds seedtrail hands Keras are
  folded into 0..2**31-1 there (`keras_seed`), and only there: TensorFlow and JAX get the
  full 32-bit seeds.

Nothing here imports Keras or a backend, except to read what an already-loaded one runs.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from importlib import metadata
from typing import Any

from seedtrail.core.errors import InputError

KERAS_ENV = "KERAS_BACKEND"
XLA_ENV = "XLA_FLAGS"
CUBLAS_ENV = "CUBLAS_WORKSPACE_CONFIG"
CUBLAS_DETERMINISTIC = ":4096:8"
TENSORFLOW = "tensorflow"

#: backend -> (the module Keras imports, the extra that installs it, packages to record)
BACKENDS: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "tensorflow": ("tensorflow", None, ()),  # tensorflow and keras: already in the record
    "jax": ("jax", "jax", ("jax", "jaxlib")),
    "torch": ("torch", "torch", ("torch",)),
}

#: The PRNG JAX draws with, pinned (jax.config names -> value; set as JAX_* variables).
JAX_PRNG = {"jax_default_prng_impl": "threefry2x32", "jax_threefry_partitionable": True}

#: oneDNN cap (hardware.ISA_CAPS values) -> XLA:CPU's name for the same cap. XLA has no
#: SSE4.1-only level: its lowest is SSE4_2.
XLA_ISA = {"AVX512_CORE": "AVX512", "AVX2": "AVX2", "AVX": "AVX", "SSE41": "SSE4_2"}


#: Under torch, a seed handed to Keras is `seed % TORCH_SEED_MODULUS`: Keras' torch backend
#: keeps a SeedGenerator's state as int32 (`random_seed_dtype()`), and a seed >= 2**31
#: fails there ("value cannot be converted to type int32 without overflow"). Non-negative,
#: so numpy (which refuses negative seeds) and Python's `random` take it too.
TORCH_SEED_MODULUS = 2**31
SEED_FOLD = "seed % 2**31 (Keras' torch backend keeps seeds as int32)"
#: torch's message when a Python int does not fit an int32 tensor.
INT32_OVERFLOW = "cannot be converted to type int32 without overflow"


#: oneDNN cap (hardware.ISA_CAPS values) -> (ATEN_CPU_CAPABILITY, MKL_CBWR) for torch.
#: torch 2.15 takes ATEN_CPU_CAPABILITY without checking the CPU (avx512 on this AVX2 CPU:
#: SIGILL), which is safe here because hardware.isa_cap_problem refuses a cap the CPU lacks.
#: ATen has no AVX or SSE4.1 kernels: below AVX2 it is "default" (no explicit SIMD).
TORCH_ISA = {
    "AVX512_CORE": ("avx512", "AVX512"),
    "AVX2": ("avx2", "AVX2"),
    "AVX": ("default", "AVX"),
    "SSE41": ("default", "COMPATIBLE"),
}
ATEN_ENV = "ATEN_CPU_CAPABILITY"
MKL_CBWR_ENV = "MKL_CBWR"


class BackendError(InputError):
    """This process cannot run the requested backend (one line, names the setting)."""


def not_installed(backend: str) -> str | None:
    """One line naming the extra to install when the backend's package is missing."""
    module, extra, _ = BACKENDS[backend]
    if importlib.util.find_spec(module) is not None:
        return None
    return (
        f"determinism.backend: {backend} is not installed in this environment: "
        f"install it with `uv sync --extra {extra}` (or pip install '{module}')"
    )


def loaded_backend() -> str | None:
    """The backend Keras runs in this process, or None if Keras is not imported yet."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    try:
        return str(keras.config.backend())
    except AttributeError:  # Keras half-imported (another thread is importing it)
        return os.environ.get(KERAS_ENV, TENSORFLOW)


def folds_seeds() -> bool:
    """Whether seeds handed to Keras in this process are folded (Keras runs on torch)."""
    return loaded_backend() == "torch"


def keras_seed(seed: int) -> int:
    """The seed to hand Keras for `seed` (a builder's `seed`, a layer's seed).

    Unchanged, except when Keras runs on torch: folded into 0..2**31-1 (`SEED_FOLD`). The
    one place seedtrail changes a seed for a backend; TensorFlow's and JAX's bytes depend
    on the full 32-bit seeds and never pass through the fold.
    """
    if folds_seeds():
        return seed % TORCH_SEED_MODULUS
    return seed


def seed_overflow(setting: str, name: str) -> str | None:
    """One line for a builder that handed Keras-on-torch a seed >= 2**31 (or None elsewhere)."""
    if not folds_seeds():
        return None
    return (
        f"{setting}: {name} gave Keras a seed outside 0..2**31-1, and Keras' torch backend "
        "keeps seeds as int32: under --backend torch the builder's `seed` is already folded "
        "into that range; keep seeds derived from it there too, e.g. (seed + i) % 2**31 "
        "(docs/backends.md)"
    )


def xla_flags(intra_op_threads: int, onednn_cap: str) -> dict[str, str]:
    """The XLA flags a JAX run needs (name without dashes -> value), in a fixed order."""
    flags = {
        # One thread for Eigen's matmuls and convolutions: their result depends on it.
        "xla_cpu_multi_thread_eigen": "false",
        "xla_gpu_deterministic_ops": "true",
    }
    isa = XLA_ISA.get(onednn_cap.upper())
    if isa is not None:
        flags["xla_cpu_max_isa"] = isa
        # Libraries that choose kernels by the CPU at run time, whatever the cap:
        # off, so that XLA's own (capped) code runs those ops.
        flags["xla_cpu_experimental_ynn_fusion_type"] = ""
        flags["xla_cpu_use_xnnpack"] = "false"
        flags["xla_cpu_use_onednn"] = "false"
    return flags


def torch_env(onednn_cap: str) -> dict[str, str]:
    """What torch reads at load for a cap (none without one: torch picks by the CPU)."""
    caps = TORCH_ISA.get(onednn_cap.upper())
    if caps is None:
        return {}
    return {ATEN_ENV: caps[0], MKL_CBWR_ENV: caps[1]}


def _parse_flags(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for token in text.split():
        name, _, value = token.lstrip("-").partition("=")
        out[name] = value
    return out


def _problem(setting: str, wanted: str, env: str, found: str) -> str:
    return (
        f"determinism.{setting}: the run needs {wanted}, but the environment sets "
        f"{env}={found}: unset it, or choose that setting"
    )


def check(backend: str, intra_op_threads: int, shards: int | None = None) -> None:
    """Settings this backend cannot honour, as one line each (before anything starts)."""
    if problem := not_installed(backend):
        raise BackendError(problem)
    if backend != TENSORFLOW and intra_op_threads != 1:
        raise BackendError(
            f"determinism.intra_op_threads: {intra_op_threads}, but under the {backend} "
            "backend seedtrail pins one intra-op thread (its bytes depend on the count; "
            "docs/backends.md): set --determinism.intra-op-threads 1"
        )
    if backend != TENSORFLOW and shards is not None and shards > 1:
        raise BackendError(
            f"training.shards: {shards} shards run as TensorFlow subgraphs; under the "
            f"{backend} backend set --training.shards 1"
        )


def apply(backend: str, intra_op_threads: int, onednn_cap: str, ours: dict[str, str]) -> None:
    """Set what the backend reads at import; refuse if Keras or the backend runs otherwise.

    `ours`: the values this module put in os.environ before (tf_runtime's `_ours`), so that
    a value set for one run of this process is not mistaken for the user's own.
    """
    check(backend, intra_op_threads)
    running = loaded_backend()
    if running is not None and running != backend:
        raise BackendError(
            f"determinism.backend: Keras already runs in this process with the {running} "
            f"backend, the run asks for {backend}: run it in a new process (Keras reads "
            f"{KERAS_ENV} once, at its import)"
        )
    by_hand = os.environ.get(KERAS_ENV)
    if by_hand is not None and ours.get(KERAS_ENV) != by_hand and by_hand != backend:
        raise BackendError(_problem("backend", backend, KERAS_ENV, by_hand))
    os.environ[KERAS_ENV] = ours[KERAS_ENV] = backend
    if backend == "jax":
        _apply_jax(intra_op_threads, onednn_cap, ours)
    elif backend == "torch":
        _apply_torch(onednn_cap, ours)


def _apply_jax(intra_op_threads: int, onednn_cap: str, ours: dict[str, str]) -> None:
    wanted = xla_flags(intra_op_threads, onednn_cap)
    current = os.environ.get(XLA_ENV, "")
    user = _parse_flags(current if ours.get(XLA_ENV) != current else ours.get("_user_xla", ""))
    for name, value in user.items():
        if name in wanted and wanted[name] != value:
            raise BackendError(
                _problem("cpu_isa", f"--{name}={wanted[name]}", XLA_ENV, f"--{name}={value}")
            )
    # The user's own flags are kept (after ours); ours are the same in every process.
    merged = " ".join(
        [f"--{k}={v}" for k, v in wanted.items()]
        + [f"--{k}={v}" if v else f"--{k}" for k, v in user.items() if k not in wanted]
    )
    if "jax" in sys.modules and _jax_flags_in_use() != merged:
        raise BackendError(
            "determinism.cpu_isa: JAX already runs in this process with XLA_FLAGS "
            f"{_jax_flags_in_use()!r}, the run asks for {merged!r}: run it in a new process"
        )
    ours["_user_xla"] = " ".join(f"--{k}={v}" for k, v in user.items())
    os.environ[XLA_ENV] = ours[XLA_ENV] = merged
    os.environ["JAX_DEFAULT_PRNG_IMPL"] = str(JAX_PRNG["jax_default_prng_impl"])
    os.environ["JAX_THREEFRY_PARTITIONABLE"] = "1"


def _jax_flags_in_use() -> str:
    # XLA parsed XLA_FLAGS when JAX started its first backend; until then it may change.
    return os.environ.get(XLA_ENV, "")


def _apply_torch(onednn_cap: str, ours: dict[str, str]) -> None:
    wanted = torch_env(onednn_cap)
    for name in (ATEN_ENV, MKL_CBWR_ENV):
        current = os.environ.get(name)
        mine = current is not None and ours.get(name) == current
        if current is not None and not mine and current != wanted.get(name, current):
            raise BackendError(_problem("cpu_isa", f"{name}={wanted[name]}", name, current))
        if name in wanted:
            os.environ[name] = ours[name] = wanted[name]
        elif mine:  # set for an earlier run of this process under a cap; none now
            del os.environ[name]
            ours.pop(name)
    by_hand = os.environ.get(CUBLAS_ENV)
    if by_hand is not None and ours.get(CUBLAS_ENV) != by_hand and by_hand != CUBLAS_DETERMINISTIC:
        if by_hand != ":16:8":  # the other deterministic value cuBLAS documents
            raise BackendError(
                _problem("backend", f"{CUBLAS_ENV}={CUBLAS_DETERMINISTIC}", CUBLAS_ENV, by_hand)
            )
        return
    os.environ[CUBLAS_ENV] = ours[CUBLAS_ENV] = CUBLAS_DETERMINISTIC


def configure_loaded(backend: str, intra_op_threads: int, onednn_cap: str = "native") -> None:
    """After Keras loaded: the switches a backend takes as calls, and a check that they hold."""
    if backend == "jax":
        import jax

        for name, value in JAX_PRNG.items():
            if getattr(jax.config, name) != value:
                jax.config.update(name, value)
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(intra_op_threads)
        torch.backends.cudnn.benchmark = False
        # ATen chose its kernels once, at its first dispatch: the record must describe it
        aten = torch_env(onednn_cap).get(ATEN_ENV)
        running = torch.backends.cpu.get_cpu_capability()
        if aten is not None and running.lower() != aten:
            raise BackendError(
                f"determinism.cpu_isa: torch already runs in this process with its "
                f"{running} kernels, the run asks for {aten}: run it in a new process"
            )


def jit_compile(backend: str) -> bool:
    """Keras' jit_compile per backend: XLA is JAX's compiler (deterministic on CPU, and with
    xla_gpu_deterministic_ops on GPU); TensorFlow turns XLA off under op determinism, and
    torch.compile is left off (its kernels are chosen by autotuning)."""
    return backend == "jax"


def record(backend: str, intra_op_threads: int, onednn_cap: str) -> dict[str, Any]:
    """What the environment record says about the backend (no import)."""
    _, _, packages = BACKENDS[backend]
    out: dict[str, Any] = {"name": backend, "jit_compile": jit_compile(backend)}
    if packages:
        out["packages"] = {p: _version(p) for p in packages}
    if backend == "jax":
        out["xla_flags"] = " ".join(
            f"--{k}={v}" for k, v in xla_flags(intra_op_threads, onednn_cap).items()
        )
        out["xla_cpu_max_isa"] = XLA_ISA.get(onednn_cap.upper(), "native")
        out.update(JAX_PRNG)
    if backend == "torch":
        out["use_deterministic_algorithms"] = True
        out["num_threads"] = intra_op_threads
        out[CUBLAS_ENV] = CUBLAS_DETERMINISTIC
        out["keras_seeds"] = SEED_FOLD
        # the cap on torch's run-time kernel choice (ONEDNN_MAX_CPU_ISA: the record's isa_cap)
        out["cpu_dispatch"] = torch_env(onednn_cap) or "native"
    return out


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def build_before_fit(model: Any, x: Any, y: Any) -> None:
    """Build what Keras builds at the start of fit(), from a batch given here.

    Keras' JAX and PyTorch trainers build a model's compiled loss and metrics (and its
    optimizer) in the first fit() of a process from the epoch iterator's first batch, then
    reset the iterator. For a `keras.utils.PyDataset` with workers that reset replays the
    batches its enqueuer had prefetched (`PyDatasetEnqueuer.stop` drains its queue "for the
    next run"; checked on Keras 3.15.0): the epoch then starts with batches 1, 2, ... and
    ends without its last ones, and only in a process's first fit(). A resumed run would
    train its first epoch on other batches than the uninterrupted run (measured under JAX:
    the first loss after a resume 1.2173 against 1.3237). Built here, fit() never reads the
    iterator to build.

    TensorFlow (without a distribution strategy) builds the optimizer and the compiled
    metrics inside the first trace of the training step instead; because that trace creates
    variables, TensorFlow traces the step a second time (Keras 3.15's `_maybe_symbolic_build`).
    Built here, the step is traced once: about 1.3 CPU-s less tracing on the tiny run, the
    same fingerprints (tests/test_golden.py).

    `test_on_batch` changes no weight, optimizer or seed state (inference: no Dropout
    draw, no BatchNorm update); the metrics it fills are reset by fit() at each epoch. The
    optimizer's variables start at their initial values whether built here or in a trace.
    """
    import keras

    if keras.config.backend() == "tensorflow" and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.test_on_batch(x, y)
