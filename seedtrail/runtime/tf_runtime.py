"""This process's TensorFlow runtime, configured from a run's determinism settings.

Keras loads with it (TensorFlow is imported under every Keras backend: Keras' own
`set_random_seed` seeds it wherever it is installed); the backend Keras computes with
(`determinism.backend`) and its own flags are applied first (seedtrail/runtime/backends.py).

TensorFlow is imported only when a stage that needs it runs: a fully cached rerun
never pays for it. What must precede the import is applied first: the oneDNN ISA
cap (`ONEDNN_MAX_CPU_ISA`) and TensorFlow's oneDNN ops switch (`TF_ENABLE_ONEDNN_OPTS`),
each read once per process. What must precede the first op
comes next: thread pools and op determinism. The runtime is per process, so a
process that already runs TensorFlow under other settings refuses instead of
training under the wrong ones.

One piece of state, three verbs:
- `set_env(s)`: the variables TensorFlow reads at import (cap, oneDNN ops), no import;
- `import_tf(s)` (or `import_tf_in_background(s)`): import TensorFlow under them;
- `configure(s, seed, devices)`: record the runtime a run needs (the environment stage;
  cheap, no TensorFlow); `configured_tf()` returns TensorFlow configured so (model,
  train and evaluate call it before their first TF op).
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from types import ModuleType

from seedtrail.core.errors import InputError
from seedtrail.runtime import backends, hardware
from seedtrail.runtime.quiet import import_in_background, import_tensorflow
from settings.model import DeterminismSettings


class RuntimeConfigError(InputError):
    """This process cannot give the requested runtime (one line, names the setting)."""


@dataclass(frozen=True)
class Configuration:
    settings: DeterminismSettings
    seed: int
    cap: str  # ONEDNN_MAX_CPU_ISA in effect, or "native"
    onednn_ops: bool  # TF_ENABLE_ONEDNN_OPTS in effect
    devices: tuple[str, ...]  # what the environment recorded that TensorFlow will see


_lock = threading.RLock()
_wanted: Configuration | None = None  # what configure() recorded
_loaded_cap: str | None = None  # the cap TensorFlow was imported under
_loaded_ops: bool | None = None  # whether it was imported with its oneDNN ops on
_configured: Configuration | None = None  # what configured_tf() applied
# What this module itself put in os.environ: a value it set for one run is not the user's
# hand-set one for the next run of the same process.
_ours: dict[str, str] = {}

#: TensorFlow's CPU tensors from its BFC pool (read once, when TF makes its CPU allocator;
#: tensorflow/core/common_runtime/process_state.cc). With the default allocator, the large
#: buffers of a convolution's backward pass went back to the OS after every step and were
#: page-faulted in again: `perf` put 37-39 % of a streamed image run's CPU in the kernel
#: (page faults, zeroing pages, munmap), 6 % for plain Keras (two intra-op threads); with
#: the pool, out of perf's top three (docs/data.md). Where memory lives does not change
#: what is computed: the golden tests run with it. A hand-set value is kept.
POOLED_CPU_MEMORY_ENV = "TF_CPU_ALLOCATOR_USE_BFC"


def _hand_set(key: str) -> bool:
    value = os.environ.get(key)
    return value is not None and _ours.get(key) != value


def effective_cap(s: DeterminismSettings) -> str:
    """The oneDNN ISA cap a process would train under with these settings."""
    problem = hardware.isa_cap_problem(s.cpu_isa)
    if problem:
        raise InputError(problem)
    wanted = hardware.isa_cap_value(s.cpu_isa)
    # oneDNN's old name, DNNL_MAX_CPU_ISA, is never ours: always the user's.
    by_hand = (
        hardware.isa_cap_in_environment()
        if _hand_set(hardware.ISA_ENV)
        else os.environ.get("DNNL_MAX_CPU_ISA")
    )
    if wanted is None:
        return by_hand.upper() if by_hand else hardware.NATIVE  # a hand-set cap is recorded
    if by_hand and by_hand.upper() != wanted:
        raise RuntimeConfigError(
            f"determinism.cpu_isa: {s.cpu_isa} means {hardware.ISA_ENV}={wanted}, but the "
            f"environment sets {hardware.ISA_ENV}={by_hand}: unset it, or choose that cap"
        )
    return wanted


INTRA_ENV = "TF_NUM_INTRAOP_THREADS"
INTER_ENV = "TF_NUM_INTEROP_THREADS"


def inter_op_threads(s: DeterminismSettings) -> int:
    """The inter-op pool a run gets: the setting, else the machine's cores.

    It never changes a byte (docs/parallelism.md): it only decides how many of a step's
    independent ops, the shards of `training.shards`, run at once.
    """
    from seedtrail.runtime.shards import machine_threads

    return s.inter_op_threads or machine_threads()


def thread_problem(s: DeterminismSettings) -> str | None:
    """A thread count set by hand in the environment that contradicts the settings.

    TensorFlow reads TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS only when no count is
    configured; seedtrail always configures both, so such a variable would be silently
    ignored: a user who set it by hand is told instead.
    """
    pairs = [(INTRA_ENV, "intra_op_threads", s.intra_op_threads)]
    if s.inter_op_threads is not None:
        pairs.append((INTER_ENV, "inter_op_threads", s.inter_op_threads))
    for env, name, value in pairs:
        by_hand = os.environ.get(env)
        if by_hand is not None and _hand_set(env) and by_hand.strip() != str(value):
            return (
                f"determinism.{name}: {value}, but the environment sets {env}={by_hand}: "
                f"unset it, or set --determinism.{name.replace('_', '-')} {by_hand}"
            )
    return None


def effective_onednn_ops(s: DeterminismSettings) -> bool:
    """Whether TensorFlow's oneDNN ops are on in a process with these settings."""
    by_hand = hardware.onednn_ops_in_environment() if _hand_set(hardware.ONEDNN_OPS_ENV) else None
    if s.onednn_ops == "default":
        return hardware.onednn_ops_default() if by_hand is None else by_hand
    wanted = s.onednn_ops == "on"
    if by_hand is not None and by_hand != wanted:
        raise RuntimeConfigError(
            f"determinism.onednn_ops: {s.onednn_ops} means {hardware.ONEDNN_OPS_ENV}="
            f"{int(wanted)}, but the environment sets {hardware.ONEDNN_OPS_ENV}="
            f"{os.environ[hardware.ONEDNN_OPS_ENV]}: unset it, or choose that setting"
        )
    return wanted


def _word(ops: bool) -> str:
    return "on" if ops else "off"


def tensorflow_loaded() -> bool:
    return "tensorflow" in sys.modules


def _apply(cap: str, ops: bool) -> None:
    """Set the cap and oneDNN ops for a TensorFlow not yet imported; refuse if it runs otherwise.

    TF_ENABLE_ONEDNN_OPTS is always set explicitly, so what the environment records is
    what TensorFlow does, whatever its own default for this CPU.
    """
    global _loaded_cap, _loaded_ops
    if tensorflow_loaded():
        if _loaded_cap is None:  # imported before seedtrail looked: what the env said then
            _loaded_cap = (hardware.isa_cap_in_environment() or hardware.NATIVE).upper()
        if _loaded_ops is None:
            _loaded_ops = _onednn_ops_of_loaded_tensorflow()
        if _loaded_cap != cap.upper():
            raise RuntimeConfigError(
                f"determinism.cpu_isa: TensorFlow already runs in this process under the oneDNN "
                f"ISA cap {_loaded_cap.lower()}, the run asks for {cap.lower()}: "
                "run it in a new process"
            )
        if _loaded_ops != ops:
            raise RuntimeConfigError(
                "determinism.onednn_ops: TensorFlow already runs in this process with its "
                f"oneDNN ops {_word(_loaded_ops)}, the run asks for {_word(ops)}: "
                "run it in a new process"
            )
        return
    if cap == hardware.NATIVE:
        if not _hand_set(hardware.ISA_ENV):
            os.environ.pop(hardware.ISA_ENV, None)
            _ours.pop(hardware.ISA_ENV, None)
    else:
        os.environ[hardware.ISA_ENV] = _ours[hardware.ISA_ENV] = cap
    os.environ[hardware.ONEDNN_OPS_ENV] = _ours[hardware.ONEDNN_OPS_ENV] = str(int(ops))
    if not _hand_set(POOLED_CPU_MEMORY_ENV):
        os.environ[POOLED_CPU_MEMORY_ENV] = _ours[POOLED_CPU_MEMORY_ENV] = "true"


def _onednn_ops_of_loaded_tensorflow() -> bool:
    """TensorFlow's own answer (it read TF_ENABLE_ONEDNN_OPTS once, at its first op)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def set_env(s: DeterminismSettings) -> str:
    """Apply the cap without importing TensorFlow: user code about to run may import it."""
    with _lock:
        if problem := thread_problem(s):
            raise RuntimeConfigError(problem)
        cap = effective_cap(s)
        backends.apply(s.backend, s.intra_op_threads, cap, _ours)
        _apply(cap, effective_onednn_ops(s))
        return cap


def import_tf(s: DeterminismSettings | None = None) -> ModuleType:
    """Import TensorFlow under the cap of `s` (default: the configured one, else the defaults)."""
    global _loaded_cap, _loaded_ops
    with _lock:
        if s is None:
            s = _wanted.settings if _wanted else DeterminismSettings()
        cap, ops = effective_cap(s), effective_onednn_ops(s)
        backends.apply(s.backend, s.intra_op_threads, cap, _ours)
        _apply(cap, ops)
        if not tensorflow_loaded():
            _loaded_cap, _loaded_ops = cap.upper(), ops
    # Outside our lock (the import has its own): configure() may run meanwhile.
    return import_tensorflow()


def import_tf_in_background(s: DeterminismSettings) -> None:
    """Import TensorFlow in a background thread (e.g. while Prefect starts its API).

    TensorFlow's import pulls in matplotlib.pyplot; a stage importing pyplot from another
    thread meanwhile can get it half-initialized (importlib's deadlock avoidance: seen as
    "partially initialized module 'matplotlib.pyplot'"). So pyplot is imported here first.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    import_in_background(lambda: import_tf(s))


def configure(s: DeterminismSettings, seed: int, devices: list[str] | tuple[str, ...]) -> str:
    """Record the runtime a run needs (no TensorFlow import); returns the cap in effect."""
    global _wanted
    with _lock:
        if problem := thread_problem(s):
            raise RuntimeConfigError(problem)
        cap, ops = effective_cap(s), effective_onednn_ops(s)
        backends.apply(s.backend, s.intra_op_threads, cap, _ours)  # KERAS_BACKEND, XLA_FLAGS
        _apply(cap, ops)  # refuses now if TensorFlow already runs under other ones
        if _configured is not None and tensorflow_loaded():
            _check_threads(_configured.settings, s)
        _wanted = Configuration(s, seed, cap, ops, tuple(devices))
        return cap


def _check_threads(done: DeterminismSettings, wanted: DeterminismSettings) -> None:
    have = (done.intra_op_threads, inter_op_threads(done))
    want = (wanted.intra_op_threads, inter_op_threads(wanted))
    if have != want:
        raise RuntimeConfigError(
            "determinism.intra_op_threads: TensorFlow already runs in this process with "
            f"intra/inter-op threads {have[0]}/{have[1]}; "
            f"the run asks for {want[0]}/{want[1]}: run it in a new process"
        )


def configured_tf() -> ModuleType:
    """TensorFlow, configured as `configure` recorded; call before a stage's first op."""
    global _configured
    with _lock:
        if _wanted is None:
            raise RuntimeError("no runtime configured: the environment stage must run first")
        req = _wanted
        if _configured == req:
            return sys.modules["tensorflow"]
        tf = import_tf(req.settings)
        import keras

        s = req.settings
        threads = tf.config.threading
        try:
            threads.set_intra_op_parallelism_threads(s.intra_op_threads)
            threads.set_inter_op_parallelism_threads(inter_op_threads(s))
        except RuntimeError:
            raise RuntimeConfigError(
                "determinism.intra_op_threads: TensorFlow already runs in this process with "
                f"intra/inter-op threads {threads.get_intra_op_parallelism_threads()}/"
                f"{threads.get_inter_op_parallelism_threads()}; the run asks for "
                f"{s.intra_op_threads}/{inter_op_threads(s)}: run it in a new process"
            ) from None
        if s.op_determinism:
            tf.config.experimental.enable_op_determinism()
        else:
            # No public disable in TF 2.21; the framework function is what enable() flips.
            from tensorflow.python.framework import config as tf_config

            tf_config.disable_op_determinism()
        if _onednn_ops_of_loaded_tensorflow() != req.onednn_ops:
            raise RuntimeConfigError(
                f"determinism.onednn_ops: TensorFlow runs with its oneDNN ops "
                f"{_word(not req.onednn_ops)}, but the environment recorded "
                f"{_word(req.onednn_ops)}: the manifest would not describe this run"
            )
        seen = tuple(sorted(f"{d.device_type}:{d.name}" for d in tf.config.list_physical_devices()))
        if seen != tuple(sorted(req.devices)):
            raise RuntimeConfigError(
                f"environment: TensorFlow sees devices {list(seen)}, but the environment "
                f"recorded {list(req.devices)} (GPU driver, CUDA_VISIBLE_DEVICES or the gpu "
                "extra changed?): the manifest would not describe this run"
            )
        if keras.config.backend() != s.backend:  # the record must describe this run
            raise RuntimeConfigError(
                f"determinism.backend: Keras runs the {keras.config.backend()} backend in "
                f"this process, the run asks for {s.backend}: run it in a new process"
            )
        # JAX's PRNG, torch's switches and its ISA check
        backends.configure_loaded(s.backend, s.intra_op_threads, req.cap)
        keras.utils.set_random_seed(req.seed)  # python `random`, numpy global, TF global
        _configured = req
        return tf
