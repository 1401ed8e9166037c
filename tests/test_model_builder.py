"""Model builders: the contract, the reproducibility self-check, and the built-in CNN/MLP."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import numpy as np
import pytest

from seedtrail.core.errors import InputError
from seedtrail.inputs import builtin_models
from seedtrail.inputs.model_builder import build_seeded
from settings.model import ModelSettings, RunSettings
from settings.seeds import SeedPlan

pytestmark = pytest.mark.usefixtures("tensorflow_as_runs_configure_it")


def plain(input_shape, n_classes, units=8):
    """A user's builder as usually written: no explicit seeds anywhere."""
    # Keras imported when a builder runs, not at collection: each pytest worker then
    # imports TensorFlow once, as runs do (quiet.import_tensorflow), under the fixture.
    import keras

    inputs = keras.Input(shape=input_shape)
    h = keras.layers.Flatten()(inputs)
    h = keras.layers.Dense(units, activation="relu")(h)
    h = keras.layers.Dropout(0.2)(h)
    return keras.Model(inputs, keras.layers.Dense(n_classes, activation="softmax")(h))


def unseeded(input_shape, n_classes):
    import keras

    rng = np.random.default_rng()  # not reached by keras.utils.set_random_seed
    init = keras.initializers.Constant(float(rng.random()))
    inputs = keras.Input(shape=input_shape)
    h = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, keras.layers.Dense(n_classes, kernel_initializer=init)(h))


def test_the_builtin_cnn_through_the_builder_contract_gives_the_golden_initial_weights():
    """The default run's initial weights, recorded before the CNN became a builder."""
    golden = json.loads((Path(__file__).parent / "golden" / "travelling_stages.json").read_text())
    s = ModelSettings()
    options = {"conv_filters": s.conv_filters, "dense_units": s.dense_units, "dropout": s.dropout}
    seed = SeedPlan.from_settings(RunSettings())["model"]
    _, fp = build_seeded(builtin_models.cnn, (24, 24, 1), 4, seed, options)
    assert fp == golden["default"]["model"]


def test_the_builtin_mlp_standardizes_with_the_training_rows():
    x_train = np.random.default_rng(0).normal(3.0, 2.0, size=(40, 5)).astype(np.float32)
    model, _ = build_seeded(builtin_models.mlp, (5,), 2, 99, {"dense_units": 4}, x_train=x_train)
    z = model.get_layer("standardize")(x_train).numpy()
    assert np.allclose(z.mean(axis=0), 0.0, atol=1e-5) and np.allclose(
        z.std(axis=0), 1.0, atol=1e-3
    )


def test_a_builder_without_explicit_seeds_is_reproducible_from_the_stage_seed():
    random.random()  # whatever ran before must not matter: seedtrail seeds before building
    model, a = build_seeded(plain, (6, 6, 1), 3, 7, {"units": 4})
    _, b = build_seeded(plain, (6, 6, 1), 3, 7, {"units": 4})
    _, c = build_seeded(plain, (6, 6, 1), 3, 8, {"units": 4})
    assert a == b != c
    assert model.output_shape == (None, 3)


def test_another_threads_draw_during_a_build_does_not_change_keras_default_seeds():
    """Keras draws each default seed from Python's global `random` (keras/src/random/
    seed_generator.py, `random.randint`, checked against Keras 3.15.1); Prefect's threads
    draw from it too. A draw on another thread during the first build only: without
    seedtrail.core.thread_random the two builds differ and a correct builder is refused."""
    import keras

    builds = []

    def interrupted(input_shape, n_classes, units=8):
        inputs = keras.Input(shape=input_shape)
        h = keras.layers.Dense(units)(keras.layers.Flatten()(inputs))
        if not builds:  # e.g. Prefect's reconnect jitter, between two layers
            thread = threading.Thread(target=lambda: [random.random() for _ in range(3)])
            thread.start()
            thread.join()
        builds.append(1)
        return keras.Model(inputs, keras.layers.Dense(n_classes, activation="softmax")(h))

    _, fp = build_seeded(interrupted, (6, 6, 1), 3, 7, {"units": 4})
    assert len(builds) == 2
    unchanged = build_seeded(interrupted, (6, 6, 1), 3, 7, {"units": 4})[1]  # no thread now
    assert fp == unchanged, (
        f"Keras {keras.version()} no longer draws default seeds through the names of "
        "Python's `random` module (thread_random.py routes them): read its docstring"
    )


@pytest.mark.parametrize(
    ("builder", "options", "pattern"),
    [
        (
            unseeded,
            {},
            r"^model\.builder: b built different weights twice from the same seed 7: .*default_rng",
        ),
        (
            lambda input_shape, n_classes: "model",
            {},
            r"^model\.builder: b returned a str, not a keras\.Model",
        ),
        (
            lambda input_shape, n_classes: plain(input_shape, n_classes + 1),
            {},
            r"output shape \(None, 4\), but the data has 3 classes",
        ),
        (
            plain,
            {"unitz": 3},
            r"^model\.options: b cannot be called .*unexpected keyword argument 'unitz'",
        ),
        (plain, {"seed": 3}, r"^model\.options: \['seed'\] are set by seedtrail"),
        (
            lambda x: x,
            {},
            r"^model\.builder: b cannot be called as \(input_shape, n_classes, \*\*options\)",
        ),
    ],
)
def test_contract_violations_are_one_line(builder, options, pattern):
    with pytest.raises(InputError, match=pattern) as err:
        build_seeded(builder, (6, 6, 1), 3, 7, options, name="b")
    assert len(err.value.problems) == 1 and "\n" not in err.value.problems[0]


def _helper_that_raises(n: int):
    raise ValueError(f"no layer for {n} classes")


def raising(input_shape, n_classes):
    return _helper_that_raises(n_classes)


def logits(input_shape, n_classes, seed=0):
    """What many Keras users write: Dense(n_classes), from_logits=True in their own compile."""
    import keras

    init = keras.initializers.GlorotUniform(seed=seed)
    inputs = keras.Input(shape=input_shape)
    h = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, keras.layers.Dense(n_classes, kernel_initializer=init)(h))


def sigmoid(input_shape, n_classes):
    import keras

    inputs = keras.Input(shape=input_shape)
    h = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, keras.layers.Dense(n_classes, activation="sigmoid")(h))


def test_a_builder_that_raises_is_one_line_and_the_users_own_frames():
    """Issue 24: 3 tracebacks through Prefect's internals (176 lines) before."""
    from seedtrail.core.errors import UserCodeError

    with pytest.raises(UserCodeError) as err:
        build_seeded(raising, (6, 6, 1), 3, 7, name="examples.bad:build")
    assert err.value.problems == [
        "model.builder: examples.bad:build raised ValueError: no layer for 3 classes"
    ]
    frames = err.value.frames.splitlines()
    files = [line for line in frames if line.lstrip().startswith("File ")]
    assert len(files) == 2 and all(__file__ in line for line in files), frames
    assert "in raising" in files[0] and "in _helper_that_raises" in files[1]
    assert "raise ValueError" in frames[-1]


@pytest.mark.parametrize("builder", [logits, sigmoid])
def test_a_model_without_softmax_is_refused_in_one_line(builder):
    """Issue 24: a plain Dense(n_classes) trained with loss 27.6 and exit 0."""
    with pytest.raises(InputError) as err:
        build_seeded(builder, (6, 6, 1), 3, 7, name="b")
    (line,) = err.value.problems
    assert line.startswith("model.builder: b gives outputs that are not class probabilities")
    assert 'activation="softmax"' in line and "\n" not in line


def test_a_softmax_model_passes_the_probe_and_keeps_its_weights():
    model, fp = build_seeded(plain, (6, 6, 1), 3, 7, {"units": 4})
    _, fp2 = build_seeded(plain, (6, 6, 1), 3, 7, {"units": 4})
    from seedtrail.runtime.keras_io import weights_fingerprint

    assert fp == fp2 == weights_fingerprint(model)  # the probe ran on the other copy


def test_a_loader_that_raises_is_one_line_and_the_users_own_frames():
    from seedtrail.core.errors import UserCodeError
    from seedtrail.inputs.data_loader import load

    def loader(seed):
        return _helper_that_raises(seed)

    with pytest.raises(UserCodeError) as err:
        load(loader, 5, "examples.bad:load")
    assert err.value.problems == [
        "data.loader: examples.bad:load raised ValueError: no layer for 5 classes"
    ]
    assert "data_loader.py" not in err.value.frames and "in loader" in err.value.frames
