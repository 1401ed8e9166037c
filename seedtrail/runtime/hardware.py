"""The hardware facts that change a run's numerics, read without importing TensorFlow.

oneDNN (TensorFlow's CPU kernels for convolutions and matmuls) picks its kernels at
run time by instruction set and promises equal results only for the same ISA and
thread count; some kernels also block by cache size. So the CPU's numerics-relevant
flags, the oneDNN ISA cap in effect and the cache sizes are part of the environment
fingerprint. On NVIDIA machines the GPU model, compute capability, driver, CUDA and
cuDNN versions are too. Everything here reads /proc, /sys and package metadata: cheap.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from seedtrail.core.errors import InputError

#: CPU flags (as /proc/cpuinfo names them) that decide which oneDNN/Eigen kernels can run.
NUMERIC_FLAGS = (
    "sse4_1",
    "sse4_2",
    "avx",
    "f16c",
    "fma",
    "avx2",
    "avx_vnni",
    "avx512f",
    "avx512dq",
    "avx512cd",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)

#: determinism.cpu_isa -> (ONEDNN_MAX_CPU_ISA value, CPU flags the cap needs).
ISA_CAPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "avx512": ("AVX512_CORE", ("avx512f", "avx512dq", "avx512bw", "avx512vl")),
    "avx2": ("AVX2", ("avx2", "fma")),
    "avx": ("AVX", ("avx",)),
    "sse41": ("SSE41", ("sse4_1",)),
}
ISA_ENV = "ONEDNN_MAX_CPU_ISA"
NATIVE = "native"
#: The default: the cap whose bytes travel between x86 CPUs (with TensorFlow's oneDNN ops
#: off; docs/portability.md), and what it means on x86-64.
PORTABLE = "portable"
PORTABLE_X86 = "avx2"

#: TensorFlow's switch for its oneDNN ops (convolutions, matmuls as oneDNN primitives).
ONEDNN_OPS_ENV = "TF_ENABLE_ONEDNN_OPTS"
#: Linux x86: TensorFlow turns its oneDNN ops on by default only on CPUs with one of
#: these (DefaultOneDnnPolicy, tensorflow/core/util/port.cc). So one wheel computes
#: with oneDNN primitives on an AVX-512 VNNI CPU and with Eigen on an AVX2 one.
ONEDNN_DEFAULT_ON_FLAGS = (
    "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16",
)  # fmt: skip
_NEOVERSE_V1 = "0xd40"  # /proc/cpuinfo "CPU part": TensorFlow's one aarch64 default-on CPU

_GPU_PACKAGES = ("nvidia-cuda-runtime-cu12", "nvidia-cudnn-cu12", "nvidia-cublas-cu12")


def _cpuinfo() -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def cpu_flags() -> frozenset[str]:
    info = _cpuinfo()
    return frozenset((info.get("flags") or info.get("Features") or "").split())


def cache_sizes() -> dict[str, str]:
    """{"L1d": "32K", "L2": "1024K", ...} of CPU 0, from sysfs."""
    out: dict[str, str] = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        out[f"L{level}{suffix}"] = size
    return out


def cpu_facts() -> dict[str, Any]:
    """Model, vendor/family/model ids, numerics-relevant ISA flags and cache sizes."""
    info = _cpuinfo()
    flags = cpu_flags()
    return {
        "model": info.get("model name") or platform.processor() or platform.machine(),
        "id": "/".join(info.get(k, "?") for k in ("vendor_id", "cpu family", "model")),
        "isa": {flag: flag in flags for flag in NUMERIC_FLAGS},
        "cache": cache_sizes(),
    }


def _package(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _visible_gpu_count(present: int) -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return present
    ids = [v for v in visible.split(",") if v.strip() and not v.strip().startswith("-")]
    return min(len(ids), present)


def gpu_facts() -> dict[str, Any] | None:
    """NVIDIA GPUs TensorFlow will use, or None (no driver, no CUDA packages, or hidden).

    TensorFlow uses a GPU only where the driver is loaded and the `gpu` extra's CUDA
    libraries are installed; the prediction is checked against TensorFlow's own device
    list when it loads (seedtrail.runtime.tf_runtime), so a wrong guess can never go unnoticed.
    """
    gpus = sorted(Path("/proc/driver/nvidia/gpus").glob("*/information"))
    if not gpus or _package("nvidia-cudnn-cu12") is None:
        return None
    count = _visible_gpu_count(len(gpus))
    if count == 0:
        return None
    models = []
    for info in gpus[:count]:
        m = re.search(r"^Model:\s*(.+)$", info.read_text(), re.MULTILINE)
        models.append(m.group(1).strip() if m else "unknown")
    version = Path("/proc/driver/nvidia/version")
    driver = nvidia_driver_version(version.read_text()) if version.is_file() else None
    return {
        "models": models,
        "compute_capability": _compute_capabilities(count),
        "driver": driver,
        "cuda_packages": {p: _package(p) for p in _GPU_PACKAGES},
    }


def nvidia_driver_version(proc_version: str) -> str | None:
    """The driver version in /proc/driver/nvidia/version, for the proprietary and the open
    kernel module ("... Kernel Module  580.x" and "... Open Kernel Module for x86_64  580.x")."""
    m = re.search(r"Kernel Module[^\n]*?\s(\d+\.\d+(?:\.\d+)?)(?:\s|$)", proc_version)
    return m.group(1) if m else None


def _compute_capabilities(count: int) -> list[str] | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.strip() for line in out.splitlines() if line.strip()][:count]


def expected_devices(gpu: dict[str, Any] | None) -> list[str]:
    """TensorFlow's physical device list as `type:name`, predicted without importing it."""
    devices = ["CPU:/physical_device:CPU:0"]
    devices += [f"GPU:/physical_device:GPU:{i}" for i in range(len(gpu["models"]) if gpu else 0)]
    return sorted(devices)


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")


def resolve_isa(cpu_isa: str) -> str:
    """The concrete setting behind `portable`: avx2 on x86-64, native elsewhere.

    x86 machines have no common ground with other architectures' bytes, so there the
    portable profile leaves oneDNN uncapped (the machine is recorded, and compared).
    """
    if cpu_isa == PORTABLE:
        return PORTABLE_X86 if is_x86() else NATIVE
    return cpu_isa


def isa_cap_problem(cpu_isa: str, flags: frozenset[str] | None = None) -> str | None:
    """Why `cpu_isa` cannot be used on this machine (one line), or None."""
    concrete = resolve_isa(cpu_isa)
    if concrete == NATIVE:
        return None
    if concrete not in ISA_CAPS:
        return (
            f"determinism.cpu_isa: unknown ISA {cpu_isa!r} "
            f"(one of: {PORTABLE}, {NATIVE}, {', '.join(ISA_CAPS)})"
        )
    if not is_x86():
        return (
            f"determinism.cpu_isa: {cpu_isa} caps oneDNN on x86-64 CPUs; this machine is "
            f"{platform.machine()}: use --determinism.cpu-isa native"
        )
    flags = cpu_flags() if flags is None else flags
    missing = [f for f in ISA_CAPS[concrete][1] if f not in flags]
    if missing:
        lower = [n for n, (_, need) in ISA_CAPS.items() if all(f in flags for f in need)]
        hint = f"use one of: {', '.join(lower)}, native" if lower else "use native"
        what = f"the {PORTABLE} profile ({concrete})" if cpu_isa == PORTABLE else concrete
        return (
            f"determinism.cpu_isa: this CPU cannot run {what} kernels "
            f"(lacks {', '.join(missing)}); {hint}"
        )
    return None


def onednn_ops_default(flags: frozenset[str] | None = None) -> bool:
    """Whether TensorFlow turns its oneDNN ops on for this CPU when nobody says."""
    if is_x86():
        flags = cpu_flags() if flags is None else flags
        return any(f in flags for f in ONEDNN_DEFAULT_ON_FLAGS)
    return _cpuinfo().get("CPU part", "").lower() == _NEOVERSE_V1


def onednn_ops_in_environment() -> bool | None:
    """TF_ENABLE_ONEDNN_OPTS as TensorFlow reads it (0/false, 1/true), None if unset.

    TensorFlow ignores any other value with a warning; seedtrail refuses it instead.
    """
    raw = os.environ.get(ONEDNN_OPS_ENV)
    if raw is None:
        return None
    value = raw.strip().lower()
    if value in ("0", "false"):
        return False
    if value in ("1", "true"):
        return True
    raise InputError(f"{ONEDNN_OPS_ENV}={raw!r} in the environment: use 0 or 1, or unset it")


def isa_cap_value(cpu_isa: str) -> str | None:
    """The ONEDNN_MAX_CPU_ISA value for a setting (None: no cap)."""
    concrete = resolve_isa(cpu_isa)
    return None if concrete == NATIVE else ISA_CAPS[concrete][0]


def isa_cap_in_environment() -> str | None:
    """A cap the user set by hand in the environment (oneDNN also reads the old DNNL_ name)."""
    return os.environ.get(ISA_ENV) or os.environ.get("DNNL_MAX_CPU_ISA") or None


def explain(diffs: list[tuple[str, Any, Any]]) -> list[str]:
    """What environment differences (dotted key, A, B) mean for the bytes, in words."""
    keys = {k: (a, b) for k, a, b in diffs}
    out: list[str] = []
    gained = [
        k.split(".")[-1]
        for k, (a, b) in keys.items()
        if k.startswith("cpu.isa.") and a is False and b is True
    ]
    lost = [
        k.split(".")[-1]
        for k, (a, b) in keys.items()
        if k.startswith("cpu.isa.") and a is True and b is False
    ]
    if gained or lost:
        which = "; ".join(
            part
            for part in (
                f"only A has {', '.join(lost)}" if lost else "",
                f"only B has {', '.join(gained)}" if gained else "",
            )
            if part
        )
        out.append(
            f"CPU instruction sets differ ({which}): oneDNN picks its kernels by ISA; "
            "the portable profile on both runs (--determinism.cpu-isa portable "
            "--determinism.onednn-ops off, the defaults) takes that difference away"
        )
    ops = keys.get("determinism.onednn_ops")
    if ops:
        out.append(
            f"TensorFlow's oneDNN ops differ ({ops[0]} -> {ops[1]}): oneDNN primitives on one "
            "run, Eigen kernels on the other (TensorFlow turns them on by default only on CPUs "
            "with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX; --determinism.onednn-ops pins it)"
        )
    cap = keys.get("determinism.onednn_max_cpu_isa")
    if cap:
        out.append(f"the oneDNN ISA cap differs ({cap[0]} -> {cap[1]}): other kernels, other bytes")
    caches = [
        f"{k.split('.')[-1]} {a} -> {b}" for k, (a, b) in keys.items() if k.startswith("cpu.cache.")
    ]
    if caches:
        out.append(
            f"CPU caches differ ({', '.join(caches)}): oneDNN's kernels block by cache size; "
            "under the portable profile only the L1 data cache size matters"
        )
    if "cpu_model" in keys or "cpu.id" in keys:
        out.append("another CPU model: kernels tuned per model can round differently")
    if "devices" in keys or any(k.startswith("gpu") for k in keys):
        a, b = keys.get("devices", (None, None))
        gpu_a = any("GPU" in d for d in a or []) if a is not None else None
        gpu_b = any("GPU" in d for d in b or []) if b is not None else None
        if gpu_a is not None and gpu_b is not None and gpu_a != gpu_b:
            out.append(
                f"one run used a GPU, the other only the CPU ({'A' if gpu_a else 'B'} on GPU): GPU kernels give other bytes"
            )
        else:
            out.append("the GPUs differ (model, driver, CUDA or cuDNN): other kernels, other bytes")
    return out
