"""Every Keras backend gets the same guarantees, one switch (`--backend`; issue 21).

Fast checks here: the setting, what each backend sets before Keras loads, the record,
the refusals, torch's seed fold. Slow ones: JAX and PyTorch end to end, each real process
folded into as few runs as the guarantees allow (tests/golden/travelling_stages.json has
the JAX and torch fingerprints). The torch ones run only where torch is installed (a
5.2 GB wheel: not in CI) and skip with that reason elsewhere.
"""

from __future__ import annotations

import json
import os
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from seedtrail.compare.diff import Difference, RunRef
from seedtrail.compare.explanation import Comparison
from seedtrail.core.errors import InputError
from seedtrail.runtime import backends
from settings.cli import load_settings
from tasks.environment import capture_environment, environment_fingerprint, stack_fingerprint

GOLDEN = json.loads((Path(__file__).parent / "golden" / "travelling_stages.json").read_text())
JAX_INSTALLED = backends.not_installed("jax") is None
TORCH_INSTALLED = backends.not_installed("torch") is None
needs_jax = pytest.mark.skipif(
    not JAX_INSTALLED, reason="jax is not installed (uv sync --extra jax)"
)
needs_torch = pytest.mark.skipif(
    not TORCH_INSTALLED, reason="torch is not installed (uv sync --extra torch; 5.2 GB, not in CI)"
)
#: The backends other than TensorFlow, each tested end to end where it is installed.
OTHER_BACKENDS = [pytest.param("jax", marks=needs_jax), pytest.param("torch", marks=needs_torch)]


def test_the_backend_is_one_flag_and_tensorflow_by_default() -> None:
    assert load_settings([]).determinism.backend == "tensorflow"
    assert load_settings(["--backend", "jax"]).determinism.backend == "jax"
    assert load_settings(["--backend=torch"]).determinism.backend == "torch"
    assert load_settings(["--determinism.backend", "jax"]).determinism.backend == "jax"
    with pytest.raises(InputError, match=r"determinism\.backend: Input should be"):
        load_settings(["--backend", "mxnet"])


def test_jax_flags_pin_threads_prng_gpu_and_under_a_cap_the_cap_alone() -> None:
    portable = backends.xla_flags(1, "AVX2")
    assert portable == {
        "xla_cpu_multi_thread_eigen": "false",
        "xla_gpu_deterministic_ops": "true",
        "xla_cpu_max_isa": "AVX2",
        "xla_cpu_experimental_ynn_fusion_type": "",
        "xla_cpu_use_xnnpack": "false",
        "xla_cpu_use_onednn": "false",
    }
    # native: no cap, and XLA's run-time-dispatching kernels stay on
    assert backends.xla_flags(1, "native") == {
        "xla_cpu_multi_thread_eigen": "false",
        "xla_gpu_deterministic_ops": "true",
    }
    assert backends.xla_flags(1, "SSE41")["xla_cpu_max_isa"] == "SSE4_2"
    assert backends.xla_flags(1, "AVX512_CORE")["xla_cpu_max_isa"] == "AVX512"


def _environment(**determinism: object) -> dict:
    s = load_settings([]).determinism.model_copy(update=determinism)
    return capture_environment(s, "AVX2", False)


def test_the_backend_is_in_the_environment_fingerprint_not_in_the_stack_one() -> None:
    tf, jax = _environment(), _environment(backend="jax")
    assert tf["keras_backend"] == {"name": "tensorflow", "jit_compile": False}
    assert jax["keras_backend"]["name"] == "jax" and jax["keras_backend"]["jit_compile"]
    assert jax["keras_backend"]["xla_cpu_max_isa"] == "AVX2"
    assert "--xla_cpu_max_isa=AVX2" in jax["keras_backend"]["xla_flags"].split()
    assert jax["keras_backend"]["jax_default_prng_impl"] == "threefry2x32"
    # model, train and evaluate are keyed by the environment fingerprint: other bytes
    assert environment_fingerprint(tf) != environment_fingerprint(jax)
    # data, augment and split by the stack fingerprint: shared by every backend
    assert stack_fingerprint(tf) == stack_fingerprint(jax)


def test_a_backend_that_is_not_installed_names_its_extra(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a)
    )
    line = backends.not_installed("jax")
    assert line is not None and "`uv sync --extra jax`" in line
    assert line.startswith("determinism.backend: jax is not installed")
    with pytest.raises(backends.BackendError, match="uv sync --extra jax"):
        backends.apply("jax", 1, "AVX2", {})


@pytest.mark.skipif(TORCH_INSTALLED, reason="torch is installed here: nothing to refuse")
def test_torch_where_it_is_not_installed_is_one_line_naming_the_extra() -> None:
    with pytest.raises(backends.BackendError) as err:
        backends.apply("torch", 1, "AVX2", {})
    assert err.value.problems == [backends.not_installed("torch")]
    assert "uv sync --extra torch" in err.value.problems[0]


@needs_jax
def test_keras_already_running_another_backend_is_refused(monkeypatch) -> None:
    fake = types.SimpleNamespace(config=types.SimpleNamespace(backend=lambda: "tensorflow"))
    monkeypatch.setitem(sys.modules, "keras", fake)
    with pytest.raises(backends.BackendError) as err:
        backends.apply("jax", 1, "AVX2", {})
    assert err.value.problems == [
        "determinism.backend: Keras already runs in this process with the tensorflow backend, "
        "the run asks for jax: run it in a new process (Keras reads KERAS_BACKEND once, at "
        "its import)"
    ]


@needs_jax
def test_a_hand_set_keras_backend_or_xla_flag_that_contradicts_the_run_is_refused(
    monkeypatch,
) -> None:
    monkeypatch.delitem(sys.modules, "keras", raising=False)
    monkeypatch.delitem(sys.modules, "jax", raising=False)
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    with pytest.raises(backends.BackendError, match=r"sets KERAS_BACKEND=torch: unset it"):
        backends.apply("jax", 1, "AVX2", {})
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=AVX512 --xla_dump_to=/tmp/x")
    with pytest.raises(backends.BackendError, match=r"--xla_cpu_max_isa=AVX2.*AVX512"):
        backends.apply("jax", 1, "AVX2", {})
    # a flag of the user's own that the run does not set is kept, after the run's
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    ours: dict[str, str] = {}
    backends.apply("jax", 1, "AVX2", ours)
    flags = os.environ["XLA_FLAGS"].split()
    assert flags[-1] == "--xla_dump_to=/tmp/x" and "--xla_cpu_max_isa=AVX2" in flags
    backends.apply("jax", 1, "AVX2", ours)  # again in the same process: the same flags
    assert os.environ["XLA_FLAGS"].split() == flags
    assert os.environ["JAX_DEFAULT_PRNG_IMPL"] == "threefry2x32"
    for key in ("XLA_FLAGS", "JAX_DEFAULT_PRNG_IMPL", "JAX_THREEFRY_PARTITIONABLE"):
        monkeypatch.delenv(key, raising=False)


@needs_jax
def test_what_jax_cannot_honour_is_one_line() -> None:
    with pytest.raises(backends.BackendError, match=r"intra-op-threads 1"):
        backends.check("jax", 2)
    with pytest.raises(
        backends.BackendError, match=r"training.shards: 2 .* set --training.shards 1"
    ):
        backends.check("jax", 1, shards=2)
    backends.check("tensorflow", 4, shards=2)  # TensorFlow's own business


def _keras_on(monkeypatch, backend: str) -> None:
    fake = types.SimpleNamespace(config=types.SimpleNamespace(backend=lambda: backend))
    monkeypatch.setitem(sys.modules, "keras", fake)


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_seeds_handed_to_keras_are_folded_into_int32_under_torch_only(
    monkeypatch, backend: str
) -> None:
    _keras_on(monkeypatch, backend)
    seeds = [0, 1, 2**31 - 1, 2**31, 3_000_000_000, 2**32 - 1]
    got = [backends.keras_seed(s) for s in seeds]
    if backend == "torch":  # Keras' torch backend keeps seeds as int32
        assert got == [0, 1, 2**31 - 1, 0, 3_000_000_000 - 2**31, 2**31 - 1]
        line = backends.seed_overflow("model.builder", "mine:build")
        assert line is not None and line.startswith("model.builder: mine:build gave Keras a seed")
        assert "(seed + i) % 2**31" in line
    else:  # TensorFlow's and JAX's bytes depend on the full 32-bit seeds: untouched
        assert got == seeds
        assert backends.seed_overflow("model.builder", "mine:build") is None


def test_torch_flags_per_profile_and_a_contradicting_hand_set_one_is_refused(monkeypatch) -> None:
    """What torch reads at load, set before it loads (checked without torch: CI has none)."""
    assert backends.torch_env("AVX2") == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
    assert backends.torch_env("AVX512_CORE") == {
        "ATEN_CPU_CAPABILITY": "avx512",
        "MKL_CBWR": "AVX512",
    }
    assert backends.torch_env("SSE41")["ATEN_CPU_CAPABILITY"] == "default"  # no SSE level
    assert backends.torch_env("native") == {}  # torch picks by the CPU
    monkeypatch.setattr(backends, "not_installed", lambda backend: None)
    monkeypatch.delitem(sys.modules, "keras", raising=False)
    for key in ("KERAS_BACKEND", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "CUBLAS_WORKSPACE_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    ours: dict[str, str] = {}
    backends.apply("torch", 1, "AVX2", ours)
    assert os.environ["ATEN_CPU_CAPABILITY"] == "avx2" and os.environ["MKL_CBWR"] == "AVX2"
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    backends.apply("torch", 1, "native", ours)  # a later run of this process, uncapped
    assert "ATEN_CPU_CAPABILITY" not in os.environ and "MKL_CBWR" not in os.environ
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")  # by hand
    backends.apply("torch", 1, "native", ours)  # kept: native sets none
    assert os.environ["ATEN_CPU_CAPABILITY"] == "default"
    with pytest.raises(backends.BackendError) as err:
        backends.apply("torch", 1, "AVX2", ours)
    assert err.value.problems == [
        "determinism.cpu_isa: the run needs ATEN_CPU_CAPABILITY=avx2, but the environment "
        "sets ATEN_CPU_CAPABILITY=default: unset it, or choose that setting"
    ]
    with pytest.raises(backends.BackendError, match=r"intra-op-threads 1"):
        backends.check("torch", 2)
    record = backends.record("torch", 1, "AVX2")
    assert record["cpu_dispatch"] == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
    assert record["keras_seeds"].startswith("seed % 2**31")
    assert record["num_threads"] == 1 and record["use_deterministic_algorithms"] is True
    assert backends.record("torch", 1, "native")["cpu_dispatch"] == "native"


@pytest.mark.usefixtures("tensorflow_as_runs_configure_it")
def test_under_torch_a_builder_gets_the_folded_seed_and_an_overflow_is_one_line(
    monkeypatch,
) -> None:
    """Keras here runs TensorFlow; `folds_seeds` says it runs torch, which is what
    build_seeded asks (torch's own overflow is raised by hand: this process cannot load
    Keras on torch)."""
    import keras

    from seedtrail.core.errors import UserCodeError
    from seedtrail.inputs.model_builder import build_seeded

    monkeypatch.setattr(backends, "folds_seeds", lambda: True)
    got: list[int] = []

    def build(input_shape, n_classes, seed):
        got.append(seed)
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, keras.layers.Dense(n_classes, activation="softmax")(inputs))

    build_seeded(build, (3,), 2, 3_000_000_000, name="mine:build")
    assert got == [3_000_000_000 - 2**31] * 2  # both builds: the folded model seed

    def overflowing(input_shape, n_classes, seed):
        # what Keras' torch backend raises for keras.random.SeedGenerator(seed + 2**31)
        raise RuntimeError("value cannot be converted to type int32 without overflow")

    with pytest.raises(UserCodeError) as err:
        build_seeded(overflowing, (3,), 2, 5, name="mine:overflowing")
    assert err.value.problems == [backends.seed_overflow("model.builder", "mine:overflowing")]
    assert "test_backends.py" in err.value.frames  # the user's own frame, as for any error


@needs_jax
def test_tensorflow_imports_without_jax_under_its_own_backend_only(monkeypatch) -> None:
    """TF 2.21 imports JAX for TF Lite alone; seedtrail's TF processes skip it (quiet.py)."""
    import importlib.util

    from seedtrail.runtime.quiet import _without_jax_for_tflite

    # The workaround's reason, read from the pinned TensorFlow: when this fails, TensorFlow
    # no longer imports JAX at import, and `_without_jax_for_tflite` can go.
    tflite_util = Path(importlib.util.find_spec("tensorflow").origin).parent / "lite/python/util.py"
    assert "from jax import jit" in tflite_util.read_text(), "remove _without_jax_for_tflite"

    monkeypatch.delitem(sys.modules, "jax", raising=False)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    with _without_jax_for_tflite(), pytest.raises(ImportError):
        import jax  # noqa: F401
    assert "jax" not in sys.modules  # afterwards a user's `import jax` works as ever
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    with _without_jax_for_tflite():  # JAX's own runs: nothing blocked
        assert sys.modules.get("jax", "not blocked") is not None


def test_compare_names_the_backend_first() -> None:
    ref = RunRef("A", "a", "complete")
    cmp = Comparison(ref, ref, stages=[])
    cmp.environment = [Difference("keras_backend.name", "tensorflow", "jax")]
    assert cmp.causes[0] == "Keras backend differs (tensorflow → jax)"
    # a run recorded before the setting existed ran TensorFlow: no backend difference
    cmp.environment = [Difference("keras_backend.name", None, "tensorflow")]
    assert not any("Keras backend" in c for c in cmp.causes)


@pytest.mark.usefixtures("tensorflow_as_runs_configure_it")
def test_a_model_file_saved_under_another_backend_is_refused_in_one_line(tmp_path: Path) -> None:
    import keras

    from seedtrail.runtime.keras_io import MARKER, load_model, save_model, saved_backend

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    path = tmp_path / "m.keras"
    save_model(model, path)
    assert saved_backend(path) == "tensorflow"
    assert load_model(path).get_layer("d").units == 2  # its own backend: loads
    other = tmp_path / "jax.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(other, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            dst.writestr(item, json.dumps({"keras_backend": "jax"}) if item == MARKER else data)
    with pytest.raises(InputError) as err:
        load_model(other)
    (line,) = err.value.problems
    assert "saved under the Keras jax backend, this process runs tensorflow" in line
    assert "--backend jax" in line
    # compare's drift reads only the weights, from either backend's file
    assert len(load_model(other, any_backend=True).weights) == 2


# --- JAX and torch end to end (slow): real processes, real Prefect, real training ----------

TRAVELLING = ("data", "augment", "split")


def _fps(manifest: dict) -> dict[str, str]:
    return {k: v["fingerprint"] for k, v in manifest["stages"].items() if k != "environment"}


def _compile_cache(backend: str, folder: Path) -> dict[str, str]:
    """JAX's own persistent compilation cache (a public setting, `JAX_COMPILATION_CACHE_DIR`)
    for the processes of one test: the first compiles every step and initializer, the later
    ones load the same executables (a JAX tiny run 27 → 12 CPU-s, same fingerprints). The
    first process of each test compiles from scratch and must still give the golden bytes;
    one folder per test, so no two processes ever write one entry at once (JAX's writes
    are not atomic). Nothing for other backends."""
    if backend != "jax":
        return {}
    return {
        "JAX_COMPILATION_CACHE_DIR": str(folder),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",  # also the sub-second compiles
    }


def _backend_record(backend: str, env: dict, manifest: dict) -> None:
    """What each backend's record and manifest say under the portable profile."""
    record = env["keras_backend"]
    assert record["name"] == backend
    assert env["determinism"]["jit_compile"] is (backend == "jax")
    if backend == "jax":
        assert record["xla_cpu_max_isa"] == "AVX2"  # the portable default
        # no per-batch losses under JAX (batch_records.py): none, rather than zeros
        assert manifest["stages"]["train"]["info"]["batch_losses"] is None
    else:
        assert record["cpu_dispatch"] == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
        assert record["num_threads"] == 1 and record["use_deterministic_algorithms"] is True
        # the builder got the model seed folded into int32 (Keras keeps torch seeds so)
        model_seed = manifest["seeds"]["stages"]["model"]
        builder_seed = manifest["stages"]["model"]["info"]["builder_seed"]
        assert builder_seed == model_seed % 2**31
        # per-batch losses: torch runs the step eagerly, seedtrail's recorder sees each one
        losses = manifest["stages"]["train"]["info"]["batch_losses"]
        assert [len(epoch) for epoch in losses] == [4, 4]  # 2 epochs of 4 batches (TINY)
        assert all(0 < loss < 10 for epoch in losses for loss in epoch), losses


@pytest.mark.slow
@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_a_backend_gives_its_golden_bytes_in_two_processes_and_verify_reproduces(
    backend: str, tiny_runs, tmp_path: Path, prefect_api_url: str
) -> None:
    """One run (process 1, compiling every step from scratch) against its golden
    fingerprints and TensorFlow's run; verify (process 2, loading process 1's executables
    from JAX's compilation cache) recomputes every stage without seedtrail's stage cache and
    must get the same bytes."""
    from seedtrail.compare.explanation import compare_manifests
    from tests.conftest import run_module

    cache = _compile_cache(backend, tiny_runs.root / f"compile-cache-{backend}")
    runs = tiny_runs.get(base=(), **{backend: (("--backend", backend), cache)})
    other, tf = runs[backend].manifest, runs["base"].manifest
    _backend_record(backend, other["stages"]["environment"]["info"]["environment"], other)
    got = _fps(other)
    # data, augment and split are backend-agnostic: TensorFlow's golden bytes
    assert {s: got[s] for s in TRAVELLING} == {s: GOLDEN["tiny"][s] for s in TRAVELLING}
    assert got["model"] != GOLDEN["tiny"]["model"]  # Keras draws weights with the backend's RNG
    want = GOLDEN[backend]["tiny"]
    assert {s: got[s] for s in ("model", "train", "evaluate")} == {
        s: want[s] for s in ("model", "train", "evaluate")
    }, GOLDEN["recorded"][backend]
    assert other["stages"]["train"]["info"]["epoch_fingerprints"] == want["epoch_fingerprints"]
    # compare names the backend first
    cmp = compare_manifests(tf, other)
    assert cmp.causes[0] == f"Keras backend differs (tensorflow → {backend})", cmp.causes
    # process 2: verify recomputes every stage (a fresh output directory: no cache)
    res = run_module(
        "flows.verify", [str(runs[backend].run_dir), "--output-dir", str(tmp_path / "again")],
        cwd=tmp_path, prefect_home=tmp_path / "home",
        env={"PREFECT_API_URL": prefect_api_url, **cache},
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert "every stage matches (7 of 7)" in res.stdout, res.stdout
    (rerun,) = [p for p in (tmp_path / "again").iterdir() if (p / "manifest.json").exists()]
    again = json.loads((rerun / "manifest.json").read_text())
    assert not any(v["cached"] for v in again["stages"].values())
    assert _fps(again) == got
    # the model file names its backend and reloads under it (the verify process did)
    from seedtrail.runtime.keras_io import saved_backend

    assert saved_backend(rerun / "model.keras") == backend


@pytest.mark.slow
@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_a_sweep_with_the_users_builder_equals_single_runs_cache_and_kill_9_resume(
    backend: str, tmp_path: Path, prefect_api_url: str, example_images: Path
) -> None:
    """The user's builder and image folder under JAX or torch: a sweep (its run in a worker
    process, which must set the backend itself); the same seed run alone in the same output
    folder takes every stage from the cache; run alone elsewhere, killed -9 after 2 epochs
    and resumed, it ends with the sweep's bytes. One seed: each JAX run costs ~25 CPU s on
    2 cores, and sweeps of several seeds are tested under TensorFlow (test_byo_flow.py)."""
    import signal

    from tests.conftest import finish, run_module, start_module
    from tests.test_byo_flow import flags, images_settings
    from tests.test_resume_cache import _wait_for_checkpoint

    # the sweep's worker compiles; the cached, killed and resumed runs load its executables
    env = {"PREFECT_API_URL": prefect_api_url, **_compile_cache(backend, tmp_path / "xla")}
    kw = {"cwd": tmp_path, "prefect_home": tmp_path / "home", "env": env}
    args = [*flags(images_settings(example_images)), "--backend", backend]
    sweep_dir = tmp_path / "out" / "sweep"
    sweep = run_module(
        "flows.sweep",
        [*args, "--output-dir", str(tmp_path / "out"), "--sweep-dir", str(sweep_dir),
         "--seeds", "0"],
        **kw,
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    swept = {r["seed"]: r for r in json.loads((sweep_dir / "summary.json").read_text())["runs"]}
    manifests = [json.loads(m.read_text()) for m in sweep_dir.glob("*/manifest.json")]
    for m in manifests:  # each worker process ran Keras on the backend
        env = m["stages"]["environment"]["info"]["environment"]
        assert env["keras_backend"]["name"] == backend
    assert set(swept) == {0}

    cached = run_module("flows.train", [*args, "--seed", "0", "--output-dir", str(sweep_dir)], **kw)
    assert cached.returncode == 0, cached.stderr[-3000:]
    (alone,) = [
        json.loads(m.read_text())
        for m in sweep_dir.glob("*/manifest.json")
        if json.loads(m.read_text())["run_id"] not in {x["run_id"] for x in manifests}
    ]
    assert all(v["cached"] for k, v in alone["stages"].items() if k != "environment")
    assert {k: v["fingerprint"] for k, v in alone["stages"].items()} == swept[0]["fingerprints"]

    out = tmp_path / "single"
    proc = start_module("flows.train", [*args, "--output-dir", str(out)], **kw)
    run_dir = _wait_for_checkpoint(out, 2)
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"
    resumed = run_module("flows.train", ["--resume", str(run_dir)], **kw)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = json.loads((run_dir / "manifest.json").read_text())
    assert final["stages"]["train"]["info"]["resumed_after_epoch"] >= 2
    got = final["stages"]["train"]["info"]["epoch_fingerprints"]
    want = next(m for m in manifests if m["settings"]["seed"] == 0)["stages"]["train"]["info"]
    assert got[:2] == want["epoch_fingerprints"][:2]  # the epochs before the kill
    # bit-exact: the resumed process's first fit() trains on the epoch's own batches
    # (backends.build_before_fit: Keras' build in a first fit() replays prefetched batches)
    assert got == want["epoch_fingerprints"]
    assert {k: v["fingerprint"] for k, v in final["stages"].items()} == swept[0]["fingerprints"]


# The standard way to make a module unimportable: None in sys.modules (import raises
# ImportError, importlib.util.find_spec answers None), as in an environment without it.
_BLOCK_JAX = "import sys\nsys.modules['jax'] = None\n"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("prelude", "expected"),
    [
        # jax missing (blocked in this process): the line names the extra to install
        (_BLOCK_JAX, "error: determinism.backend: jax is not installed in this environment: "
                     "install it with `uv sync --extra jax`"),
        # Keras imported before the command, on TensorFlow: it cannot switch backend
        ("import os\nos.environ['KERAS_BACKEND'] = 'tensorflow'\nimport keras\n",
         "error: determinism.backend: Keras already runs in this process with the tensorflow "
         "backend, the run asks for jax"),
    ],
    ids=["not-installed", "keras-already-imported"],
)  # fmt: skip
def test_a_backend_this_process_cannot_run_is_one_line_exit_2_before_prefect_starts(
    tmp_path: Path, prelude: str, expected: str
) -> None:
    """The real command (`python -m flows.train`, run by runpy after the prelude)."""
    import subprocess

    from tests.conftest import TINY, cli_env

    out = tmp_path / "runs"
    code = (
        prelude + "import runpy\n"
        f"sys.argv = ['flows.train', *{[*TINY, '--backend', 'jax', '--output-dir', str(out)]!r}]\n"
        "runpy.run_module('flows.train', run_name='__main__', alter_sys=True)\n"
    )
    if "import sys" not in prelude:
        code = "import sys\n" + code
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=cli_env(tmp_path / "home"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    # (the prelude's own `import keras` prints TensorFlow's start-up lines before ours)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(expected), proc.stderr
    assert proc.stderr.rstrip().endswith(errors[0])
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "Starting temporary server" not in proc.stdout + proc.stderr  # Prefect never started
    assert not out.exists() or not any(out.iterdir()), "something was left behind"


def test_keras_replays_read_ahead_batches_after_its_build_read() -> None:
    """What `backends.build_before_fit` works around (checked on Keras 3.15.0): Keras' JAX
    and PyTorch trainers read one batch to build, then reset the epoch iterator; a
    PyDataset's enqueuer then replays the batches its threads had read ahead (how many
    depends on thread timing), so the epoch is not batches 0..5 in order. If this fails,
    Keras no longer replays: the workaround can go."""
    import time

    import keras
    from keras.src.trainers.epoch_iterator import EpochIterator  # what fit() iterates

    served: list[int] = []

    class Numbered(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=2, use_multiprocessing=False, max_queue_size=4)

        def __len__(self) -> int:
            return 6

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            served.append(i)
            return np.full((1, 1), i, "float32"), np.zeros((1,), "float32")

    def batch_number(data: object) -> int:
        x, _ = data[0] if isinstance(data, list) else next(data)
        return int(x[0, 0])

    epoch = EpochIterator(x=Numbered())
    for _, _, data in epoch:  # Trainer._symbolic_build: the first batch, then reset()
        batch_number(data)
        break
    deadline = time.monotonic() + 60
    while len(served) < 3 and time.monotonic() < deadline:  # its threads read ahead
        time.sleep(0.01)
    epoch.reset()
    order = [batch_number(data) for _, _, data in epoch]
    assert len(order) == 6
    assert order != list(range(6)), "Keras no longer replays: build_before_fit can go"


@pytest.mark.usefixtures("tensorflow_as_runs_configure_it")
def test_under_tensorflow_fit_creates_no_variable_once_built_before_fit() -> None:
    """What `backends.build_before_fit` spares TensorFlow (checked on Keras 3.15.0): without
    it, the first trace of the training step creates the optimizer's and the metrics'
    variables, and TensorFlow traces the step again (about 1 CPU-s on the tiny run). A
    variable created during fit() fails here; the control shows Keras still does it."""
    import keras
    import numpy as np
    import tensorflow as tf

    from seedtrail.runtime import backends

    x, y = np.zeros((8, 4), "float32"), np.arange(8) % 3

    def variables_created_in_fit(build_first: bool) -> list[str]:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile(
            optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        if build_first:
            backends.build_before_fit(model, x, y)
        created: list[str] = []

        def creator(next_creator, **kwargs):
            created.append(str(kwargs.get("name")))
            return next_creator(**kwargs)

        with tf.variable_creator_scope(creator):
            model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        return created

    assert variables_created_in_fit(build_first=True) == []
    assert variables_created_in_fit(build_first=False), (
        "Keras now builds before its first trace under TensorFlow: build_before_fit's "
        "TensorFlow branch can go"
    )
