"""training.shards: K fixed shards per batch, inter-op threads that change no byte.

Fast tests check the settings, the step's arithmetic in this process (whose thread pools
are fixed: see tensorflow_as_runs_configure_it) and what compare and sweeps make of the
inter-op threads; slow ones train for real in processes with 1, 2 and 4 inter-op threads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seedtrail.compare.explanation import compare_manifests
from seedtrail.core.errors import InputError
from seedtrail.run.rundir import settings_fingerprint
from seedtrail.runtime import tf_runtime
from seedtrail.sweep.plan import budget_threads
from settings.model import DeterminismSettings, RunSettings
from settings.validation import shard_problem
from tests.conftest import TinyRuns, run_module
from tests.test_compare import make_manifest

# --- settings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shards", "batch", "expected"),
    [
        (3, 32, "training.shards: 3 does not divide training.batch_size 32"),
        (64, 32, "training.shards: 64 exceeds training.batch_size 32"),
        (5, 4, "training.shards: 5 exceeds training.batch_size 4"),
    ],
)
def test_shards_that_cannot_split_a_batch_name_both_settings(
    shards: int, batch: int, expected: str, tmp_path: Path
) -> None:
    assert shard_problem(shards, batch).startswith(expected)
    from flows.train import main

    out = tmp_path / "runs"
    with pytest.raises(InputError) as err:
        main(
            [
                "--training.shards",
                str(shards),
                "--training.batch-size",
                str(batch),
                "--output-dir",
                str(out),
            ]
        )
    (line,) = err.value.problems
    assert expected in line and "\n" not in line
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(("shards", "batch"), [(1, 1), (1, 32), (2, 32), (8, 32), (32, 32)])
def test_divisors_are_accepted(shards: int, batch: int) -> None:
    assert shard_problem(shards, batch) is None
    assert (
        RunSettings.model_validate(
            {"training": {"shards": shards, "batch_size": batch}}
        ).training.shards
        == shards
    )


def test_a_hand_set_intra_op_thread_count_that_contradicts_the_setting_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "4")
    problem = tf_runtime.thread_problem(DeterminismSettings())
    assert problem is not None and "\n" not in problem
    assert problem.startswith("determinism.intra_op_threads: 1")
    assert "TF_NUM_INTRAOP_THREADS=4" in problem
    with pytest.raises(tf_runtime.RuntimeConfigError):
        tf_runtime.set_env(DeterminismSettings())
    # agreeing with the setting is fine
    assert tf_runtime.thread_problem(DeterminismSettings(intra_op_threads=4)) is None
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "3")
    assert tf_runtime.thread_problem(DeterminismSettings(intra_op_threads=4)) is None  # unset
    assert "TF_NUM_INTEROP_THREADS=3" in tf_runtime.thread_problem(
        DeterminismSettings(intra_op_threads=4, inter_op_threads=2)
    )


def test_the_command_refuses_a_contradicting_thread_variable_in_one_line(tmp_path: Path) -> None:
    from flows.train import main

    out = tmp_path / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TF_NUM_INTRAOP_THREADS", "2")
        with pytest.raises(InputError) as err:
            main(["--output-dir", str(out)])
    (line,) = err.value.problems
    assert "determinism.intra_op_threads" in line and "TF_NUM_INTRAOP_THREADS=2" in line
    assert not out.exists() or not any(out.iterdir())


def test_inter_op_threads_default_to_the_machine_and_leave_the_fingerprint() -> None:
    from seedtrail.runtime.shards import machine_threads

    assert RunSettings().determinism.inter_op_threads is None
    assert tf_runtime.inter_op_threads(DeterminismSettings()) == machine_threads() >= 1
    assert tf_runtime.inter_op_threads(DeterminismSettings(inter_op_threads=3)) == 3
    base = RunSettings()
    for n in (1, 2, 64):
        other = RunSettings.model_validate({"determinism": {"inter_op_threads": n}})
        assert settings_fingerprint(other) == settings_fingerprint(base)
    shards = RunSettings.model_validate({"training": {"shards": 2}})
    assert settings_fingerprint(shards) != settings_fingerprint(base)  # K changes the bytes


def test_environment_fingerprint_and_cache_keys_ignore_inter_op_threads() -> None:
    from tasks.environment import capture_environment, environment_fingerprint

    fps = {
        environment_fingerprint(
            capture_environment(DeterminismSettings(inter_op_threads=n), "AVX2", False)
        )
        for n in (1, 2, 8)
    }
    assert len(fps) == 1
    one = capture_environment(DeterminismSettings(intra_op_threads=2), "AVX2", False)
    assert environment_fingerprint(one) not in fps  # intra-op threads still count


def test_compare_does_not_call_inter_op_threads_a_cause() -> None:
    a = make_manifest(RunSettings.model_validate({"determinism": {"inter_op_threads": 1}}))
    b = make_manifest(RunSettings.model_validate({"determinism": {"inter_op_threads": 16}}))
    b["stages"]["environment"]["fingerprint"] = a["stages"]["environment"]["fingerprint"]
    result = compare_manifests(a, b)
    assert result.matches and result.settings == []
    (env,) = result.environment
    assert (env.key, env.a, env.b) == ("determinism.inter_op_threads", 1, 16)
    assert env.note  # shown, marked as not changing the bytes
    assert not any("inter_op" in c for c in result.causes)


@pytest.mark.parametrize(
    ("workers", "cores", "each"), [(1, 2, 2), (2, 2, 1), (3, 2, 1), (4, 16, 4)]
)
def test_sweep_workers_share_the_cores(workers: int, cores: int, each: int) -> None:
    base = RunSettings()
    budgeted = budget_threads(base, workers, cores)
    assert budgeted.determinism.inter_op_threads == each
    assert settings_fingerprint(budgeted) == settings_fingerprint(base)
    pinned = RunSettings.model_validate({"determinism": {"inter_op_threads": 5}})
    assert budget_threads(pinned, workers, cores).determinism.inter_op_threads == 5


# --- the sharded step, in this process ----------------------------------------------------


def _tiny_model(bn: bool, seed: int = 0):
    import keras
    from keras import layers

    init = keras.initializers.GlorotUniform(seed=seed)
    inp = keras.Input((6, 6, 1))
    x = layers.Conv2D(3, 3, padding="same", kernel_initializer=init)(inp)
    if bn:
        x = layers.BatchNormalization(momentum=0.5)(x)
    x = layers.Flatten()(layers.Activation("relu")(x))
    return keras.Model(inp, layers.Dense(3, activation="softmax", kernel_initializer=init)(x))


def _compiled(model, shards: int):
    import keras

    from seedtrail.runtime.shards import sharded

    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    if shards == 1:
        return model
    runner = sharded(model, shards)
    runner.compile(
        optimizer=model.optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    return runner


def _data(n: int = 8):
    rng = np.random.default_rng(0)
    return rng.random((n, 6, 6, 1), dtype=np.float32), rng.integers(0, 3, n)


@pytest.mark.usefixtures("tensorflow_as_runs_configure_it")
def test_shard_gradients_add_up_to_the_batch_mean_gradient() -> None:
    """Without batch statistics, K shards compute what one batch does, up to rounding."""
    x, y = _data()
    weights = {}
    for k in (1, 2, 4):
        model = _tiny_model(bn=False)
        h = _compiled(model, k).fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        weights[k] = ([v.numpy() for v in model.trainable_variables], h.history["loss"][0])
    moved = [np.abs(w - w0).max() for w, w0 in zip(weights[1][0], _initial(), strict=True)]
    assert max(moved) > 1e-3  # a step that moves the weights
    for k in (2, 4):
        for a, b in zip(weights[1][0], weights[k][0], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert weights[k][1] == pytest.approx(weights[1][1], rel=1e-5)  # loss: the batch mean


def _initial() -> list[np.ndarray]:
    return [v.numpy() for v in _tiny_model(bn=False).trainable_variables]


@pytest.mark.usefixtures("tensorflow_as_runs_configure_it")
def test_batch_normalization_uses_each_shards_statistics_in_shard_order() -> None:
    """Ghost batch normalization: K moving-average updates per step, one per shard."""
    x, y = _data()
    model = _tiny_model(bn=True)
    conv = model.layers[1]
    kernel, bias = (v.numpy() for v in conv.weights)
    _compiled(model, 2).fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    bn = model.layers[2]

    def conv_out(xs: np.ndarray) -> np.ndarray:  # 3x3 'same' convolution, channels-last
        pad = np.pad(xs[..., 0], ((0, 0), (1, 1), (1, 1)))
        out = np.zeros((len(xs), 6, 6, 3))
        for i in range(3):
            for j in range(3):
                out += pad[:, i : i + 6, j : j + 6, None] * kernel[i, j, 0]
        return out + bias

    expected = np.zeros(3)  # moving mean starts at 0, momentum 0.5
    for shard in (x[:4], x[4:]):
        expected = 0.5 * expected + 0.5 * conv_out(shard).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(bn.moving_mean.numpy(), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.usefixtures("tensorflow_as_runs_configure_it")
def test_a_last_batch_smaller_than_k_trains_without_nan() -> None:
    """10 samples at batch 8: the last batch of 2 leaves two of K=4 shards empty."""
    x, y = _data(10)
    model = _tiny_model(bn=True)
    runner = _compiled(model, 4)
    h = runner.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(h.history["loss"][0])
    assert all(np.isfinite(v.numpy()).all() for v in model.variables)
    ev = runner.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert np.isfinite(ev["loss"]) and 0 <= ev["accuracy"] <= 1


@pytest.mark.usefixtures("tensorflow_as_runs_configure_it")
def test_predict_and_evaluate_in_shards_match_the_model() -> None:
    x, y = _data(11)
    model = _tiny_model(bn=True)
    one = _compiled(model, 1)
    plain = one.predict(x, batch_size=4, verbose=0)
    plain_eval = one.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    runner = _compiled(model, 2)
    np.testing.assert_allclose(runner.predict(x, batch_size=4, verbose=0), plain, rtol=1e-6)
    ev = runner.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    assert ev["accuracy"] == plain_eval["accuracy"]
    assert ev["loss"] == pytest.approx(plain_eval["loss"], rel=1e-5)


@pytest.mark.usefixtures("tensorflow_as_runs_configure_it")
def test_the_users_own_builder_trains_in_shards_unchanged() -> None:
    """examples/model.py, as the model stage builds it; its file saves and loads as before."""
    from examples.model import build

    model = build((16, 16, 3), 4, seed=3)
    rng = np.random.default_rng(1)
    x, y = rng.random((16, 16, 16, 3), dtype=np.float32), rng.integers(0, 4, 16)
    runner = _compiled(model, 4)
    h = runner.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(h.history["loss"][0]) and set(h.history) == {"loss", "accuracy"}
    assert type(model) is not type(runner) and runner.inner is model
    assert [id(v) for v in runner.trainable_variables] == [id(v) for v in model.trainable_variables]


# --- real runs: the bytes depend on K, never on the inter-op threads ----------------------


def _inter(n: int, k: int = 2) -> tuple[str, ...]:
    return ("--training.shards", str(k), "--determinism.inter-op-threads", str(n))


@pytest.mark.slow
def test_inter_op_threads_never_change_a_byte_at_fixed_k(
    tmp_path: Path, tiny_runs: TinyRuns
) -> None:
    """1 and 8 inter-op threads, K = 2: the same bytes. The two ends of what a machine
    gives: with 1 the shards run one after the other, with 8 they (and every independent op)
    run at once, on more threads than this machine has cores. (2 and 4 lie between; each
    value is a process of its own, about 14 CPU s of the suite's budget.) The 1-thread run
    is the resume tests' reference (SIX_EPOCHS_K2)."""
    from tests.test_resume_cache import SIX_EPOCHS, SIX_EPOCHS_K2, six_epochs_k2

    assert (*SIX_EPOCHS, *_inter(1)) == SIX_EPOCHS_K2
    runs = {
        "k2_inter1": six_epochs_k2(tiny_runs),
        **tiny_runs.get(base=(), k2_inter8=(*SIX_EPOCHS, *_inter(8))),
    }
    fps = {name: run.fingerprints() for name, run in runs.items()}
    assert fps["k2_inter8"] == fps["k2_inter1"]
    for name in ("k2_inter1", "k2_inter8"):  # each ran with its own count
        m = runs[name].manifest
        env = m["stages"]["environment"]["info"]["environment"]["determinism"]
        assert env["inter_op_threads"] == int(name[-1])
    assert fps["k2_inter1"]["model"] == fps["base"]["model"]  # K changes no initial weight
    # ... and compare says they match, with no cause
    res = run_module(
        "flows.compare",
        [str(runs["k2_inter1"].run_dir), str(runs["k2_inter8"].run_dir)],
        cwd=tmp_path,
        prefect_home=tmp_path / "home",
        env={"PREFECT_API_URL": tiny_runs.api_url},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "likely causes" not in res.stdout
