"""The hardware the environment records, the oneDNN ISA cap, and what compare says of them.

Pure functions and hand-made inputs: nothing here assumes the CPU it runs on.
"""

from __future__ import annotations

import os

import pytest

from seedtrail.compare.explanation import compare_manifests
from seedtrail.core.errors import InputError
from seedtrail.runtime import hardware, tf_runtime
from settings.model import DeterminismSettings, RunSettings
from tasks.environment import capture_environment, environment_fingerprint

AVX2_ONLY = frozenset({"sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c"})
AVX512 = AVX2_ONLY | {"avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni"}


def test_cpu_facts_name_every_numerics_flag_and_the_caches() -> None:
    facts = hardware.cpu_facts()
    assert set(facts["isa"]) == set(hardware.NUMERIC_FLAGS)
    assert all(isinstance(v, bool) for v in facts["isa"].values())
    assert isinstance(facts["cache"], dict) and facts["model"]


@pytest.mark.parametrize(
    ("isa", "flags", "problem"),
    [
        ("native", AVX2_ONLY, None),
        ("avx2", AVX2_ONLY, None),
        ("avx512", AVX512, None),
        ("avx512", AVX2_ONLY, "lacks avx512f, avx512dq, avx512bw, avx512vl"),
        ("avx2", frozenset({"sse4_1", "avx"}), "use one of: avx, sse41, native"),
        ("amx", AVX512, "unknown ISA 'amx'"),
    ],
)
def test_isa_cap_problems_name_the_setting(isa: str, flags: frozenset, problem: str | None) -> None:
    if not hardware.is_x86():
        pytest.skip("x86-64 caps are refused as a whole on this machine (tested below)")
    got = hardware.isa_cap_problem(isa, flags)
    if problem is None:
        assert got is None
    else:
        assert got is not None and got.startswith("determinism.cpu_isa:") and problem in got


def test_x86_caps_are_refused_on_other_machines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware.platform, "machine", lambda: "aarch64")
    problem = hardware.isa_cap_problem("avx2", AVX512)
    assert problem is not None and "--determinism.cpu-isa native" in problem
    assert hardware.isa_cap_problem("native") is None


def test_a_cap_set_by_hand_is_recorded_or_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    if hardware.isa_cap_problem("avx2") or hardware.isa_cap_problem("avx"):
        pytest.skip("this CPU cannot run the avx2 cap")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX")
    assert tf_runtime.effective_cap(DeterminismSettings(cpu_isa="native")) == "AVX"
    assert tf_runtime.effective_cap(DeterminismSettings(cpu_isa="avx")) == "AVX"
    with pytest.raises(
        InputError, match=r"determinism\.cpu_isa: avx2 means ONEDNN_MAX_CPU_ISA=AVX2"
    ):
        tf_runtime.effective_cap(DeterminismSettings(cpu_isa="avx2"))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert tf_runtime.effective_cap(DeterminismSettings(cpu_isa="native")) == "native"


def test_the_cap_changes_the_environment_fingerprint() -> None:
    """Acceptance: a native run and an ONEDNN_MAX_CPU_ISA=AVX run are told apart."""
    s = DeterminismSettings(cpu_isa="native")
    native = capture_environment(s, "native", False)
    capped = capture_environment(s, "AVX", False)
    assert native["determinism"]["onednn_max_cpu_isa"] == "native"
    assert environment_fingerprint(native) != environment_fingerprint(capped)
    # ...and so do the CPU's instruction sets and caches, which no setting controls
    other_cpu = {
        **native,
        "cpu": {
            **native["cpu"],
            "isa": {**native["cpu"]["isa"], "avx512f": not native["cpu"]["isa"]["avx512f"]},
        },
    }
    assert environment_fingerprint(other_cpu) != environment_fingerprint(native)
    other_cache = {**native, "cpu": {**native["cpu"], "cache": {"L2": "512K"}}}
    assert environment_fingerprint(other_cache) != environment_fingerprint(native)
    # while the hash seed and core count are recorded but change no bytes
    assert environment_fingerprint({**native, "cpu_count": 64}) == environment_fingerprint(native)


def _with_env(manifest: dict, **changes: object) -> dict:
    import copy

    m = copy.deepcopy(manifest)
    env = m["environment"]
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = env
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    m["stages"]["environment"]["fingerprint"] = repr(sorted(changes.items()))
    m["stages"]["train"]["fingerprint"] = "f" * 64
    m["stages"]["train"]["info"]["epoch_fingerprints"][-1] = "f" * 64
    return m


def test_compare_names_the_isa_the_cap_and_the_caches() -> None:
    from tests.test_compare import make_manifest

    base = make_manifest(RunSettings())
    base["environment"]["cpu"] = {
        "isa": {"avx2": True, "avx512f": False, "avx512bw": False},
        "cache": {"L1d": "32K", "L2": "512K"},
    }
    base["environment"]["determinism"]["onednn_max_cpu_isa"] = "native"
    other = _with_env(
        base,
        cpu__isa__avx512f=True,
        cpu__isa__avx512bw=True,
        cpu__cache__L2="1024K",
        determinism__onednn_max_cpu_isa="AVX",
    )
    result = compare_manifests(base, other)
    text = result.render()
    assert result.exit_code == 1 and result.first_divergent_stage == "train"
    assert result.causes[0] == "hardware (see below)"
    assert "CPU instruction sets differ (only B has avx512f, avx512bw)" in text
    assert "the oneDNN ISA cap differs (native -> AVX)" in text
    assert "CPU caches differ (L2 512K -> 1024K)" in text
    assert "determinism.onednn_max_cpu_isa: native -> AVX" in text


def test_compare_names_cpu_against_gpu() -> None:
    from tests.test_compare import make_manifest

    base = make_manifest(RunSettings())
    gpu = _with_env(
        base,
        devices=["CPU:/physical_device:CPU:0", "GPU:/physical_device:GPU:0"],
        gpu={"models": ["NVIDIA H100"], "compute_capability": ["9.0"]},
    )
    text = compare_manifests(base, gpu).render()
    assert "one run used a GPU, the other only the CPU (B on GPU)" in text


def test_expected_devices_follow_the_gpu_facts() -> None:
    assert hardware.expected_devices(None) == ["CPU:/physical_device:CPU:0"]
    two = {"models": ["A", "B"]}
    assert hardware.expected_devices(two) == [
        "CPU:/physical_device:CPU:0",
        "GPU:/physical_device:GPU:0",
        "GPU:/physical_device:GPU:1",
    ]


def test_tensorflows_onednn_default_follows_its_cpu_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorFlow turns its oneDNN ops on by default only on CPUs with these features: the
    reason one wheel computed other weights on an AVX-512 VNNI CPU than on an AVX2 one."""
    monkeypatch.setattr(hardware.platform, "machine", lambda: "x86_64")
    assert hardware.onednn_ops_default(AVX2_ONLY) is False  # e.g. Zen 3: Eigen kernels
    assert hardware.onednn_ops_default(AVX512) is True  # has avx512_vnni: oneDNN primitives
    assert hardware.onednn_ops_default(AVX2_ONLY | {"avx_vnni"}) is True
    assert hardware.onednn_ops_default(AVX2_ONLY | {"avx512f", "avx512bw"}) is False


@pytest.mark.parametrize(
    ("raw", "expected"), [("0", False), ("false", False), ("TRUE", True), ("1", True), (None, None)]
)
def test_the_onednn_switch_is_read_as_tensorflow_reads_it(
    monkeypatch: pytest.MonkeyPatch, raw: str | None, expected: bool | None
) -> None:
    if raw is None:
        monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    else:
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", raw)
    assert hardware.onednn_ops_in_environment() is expected


def test_onednn_ops_setting_wins_or_refuses_a_contradiction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "yes")  # TensorFlow would ignore it silently
    with pytest.raises(InputError, match="TF_ENABLE_ONEDNN_OPTS='yes' in the environment"):
        hardware.onednn_ops_in_environment()
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    assert tf_runtime.effective_onednn_ops(DeterminismSettings(onednn_ops="default")) is True
    assert tf_runtime.effective_onednn_ops(DeterminismSettings(onednn_ops="on")) is True
    with pytest.raises(
        InputError, match=r"determinism\.onednn_ops: off means TF_ENABLE_ONEDNN_OPTS=0"
    ):
        tf_runtime.effective_onednn_ops(DeterminismSettings(onednn_ops="off"))
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    assert tf_runtime.effective_onednn_ops(DeterminismSettings()) is False  # the default: off
    default = tf_runtime.effective_onednn_ops(DeterminismSettings(onednn_ops="default"))
    assert default is hardware.onednn_ops_default()


def test_the_portable_profile_is_avx2_on_x86_and_uncapped_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hardware.platform, "machine", lambda: "x86_64")
    assert DeterminismSettings().cpu_isa == "portable"
    assert hardware.isa_cap_value("portable") == "AVX2"
    problem = hardware.isa_cap_problem("portable", frozenset({"sse4_1", "avx"}))
    assert problem is not None and "the portable profile (avx2)" in problem
    assert "use one of: avx, sse41, native" in problem
    monkeypatch.setattr(hardware.platform, "machine", lambda: "aarch64")
    assert hardware.isa_cap_value("portable") is None
    assert hardware.isa_cap_problem("portable") is None


def test_onednn_ops_change_the_environment_and_compare_names_them() -> None:
    from tests.test_compare import make_manifest

    s = DeterminismSettings()
    off, on = capture_environment(s, "AVX2", False), capture_environment(s, "AVX2", True)
    assert environment_fingerprint(off) != environment_fingerprint(on)
    base = make_manifest(RunSettings())
    base["environment"]["determinism"]["onednn_ops"] = "off"
    other = _with_env(base, determinism__onednn_ops="on")
    result = compare_manifests(base, other)
    assert result.causes[0] == "hardware (see below)"
    assert "TensorFlow's oneDNN ops differ (off -> on)" in result.render()


@pytest.mark.parametrize(
    ("line", "version"),
    [
        # seen on this project's H100 device machine (open kernel module, x86_64 in the text)
        ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (nixbld@)", "580.159.04"),
        ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 19:39:15 UTC 2024", "535.183.01"),
        ("no driver here", None),
    ],
)  # fmt: skip
def test_the_nvidia_driver_version_is_read_from_either_kernel_module(
    line: str, version: str | None
) -> None:
    assert hardware.nvidia_driver_version(line + "\nGCC version: gcc 15.3.0\n") == version


def test_a_value_seedtrail_set_itself_is_not_taken_for_the_users(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One process, two runs (a notebook, a sweep worker): the first run's own settings in
    os.environ must not read as a contradiction set by hand for the second."""
    monkeypatch.setattr(tf_runtime, "_ours", {"TF_ENABLE_ONEDNN_OPTS": "0"})
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert tf_runtime.effective_onednn_ops(DeterminismSettings(onednn_ops="on")) is True
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")  # now not ours: the user's
    with pytest.raises(InputError, match="but the environment sets TF_ENABLE_ONEDNN_OPTS=1"):
        tf_runtime.effective_onednn_ops(DeterminismSettings(onednn_ops="off"))


def test_tensorflow_gets_its_pooled_cpu_allocator_unless_set_by_hand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TF_CPU_ALLOCATOR_USE_BFC=true before TensorFlow loads (tf_runtime.POOLED_CPU_MEMORY_ENV:
    the page faults it saves); a value the user set stays theirs."""
    env = tf_runtime.POOLED_CPU_MEMORY_ENV
    monkeypatch.setattr(tf_runtime, "tensorflow_loaded", lambda: False)
    monkeypatch.setattr(tf_runtime, "_ours", {})
    for key in (env, hardware.ISA_ENV, hardware.ONEDNN_OPS_ENV):
        monkeypatch.delenv(key, raising=False)
    tf_runtime._apply("AVX2", False)
    assert os.environ[env] == "true"
    tf_runtime._apply("AVX2", False)  # applied again (a sweep worker's next run): still ours
    assert os.environ[env] == "true"
    monkeypatch.setenv(env, "false")  # by hand
    tf_runtime._apply("AVX2", False)
    assert os.environ[env] == "false"
