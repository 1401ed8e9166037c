"""The model builder contract: how seedtrail calls a function that returns a `keras.Model`.

    def build(input_shape: tuple[int, ...], n_classes: int, **options) -> keras.Model

`options` are `model.options` (a JSON object). Two more keywords are passed only to a
builder whose signature names them:
- `seed` (int): the model stage's seed, to give initializers and Dropout explicit seeds
  (under `--backend torch` folded into 0..2**31-1, since Keras' torch backend keeps seeds
  as int32: `backends.keras_seed`, recorded as the model stage's `builder_seed`);
- `x_train` (numpy array): the training split's samples, e.g. for normalization statistics.

Before each call seedtrail runs `keras.utils.set_random_seed(seed)`, which seeds Python's
`random`, numpy's global generator and TensorFlow, so a builder that draws only from
those (every Keras layer without an explicit seed does) is reproducible; other threads'
draws meanwhile go to a stream of their own (seedtrail/core/thread_random.py). It builds a
second time from the same seed and compares the weights: a builder that gives other
weights from the same seed (an unseeded generator, the clock) is refused, with the likely
causes named, before any training. The model must take `input_shape` and give
`(None, n_classes)` class probabilities (softmax): seedtrail compiles it with sparse
categorical cross-entropy on probabilities and fits it. A model that ends in a plain
`Dense(n_classes)` (logits) is refused, checked on a probe batch, rather than trained
with a loss that means nothing. A builder that raises is one line naming the setting
and the frames of the user's own files.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from seedtrail.core.errors import InputError, UserCodeError
from seedtrail.core.thread_random import owned
from seedtrail.inputs.user_code import call_user, user_frames
from seedtrail.runtime import backends, tf_runtime
from seedtrail.runtime.keras_io import weights_fingerprint

#: Keywords seedtrail passes to a builder that declares them; not allowed as options.
CONTEXT_ARGS = ("seed", "x_train")


def builder_arguments(
    builder: Callable[..., Any],
    options: Mapping[str, Any],
    context: Mapping[str, Any],
    name: str,
    setting: str = "model.builder",
) -> dict[str, Any]:
    """The keyword arguments for one call; one InputError line if the signature cannot take them."""
    clash = sorted(set(options) & set(CONTEXT_ARGS))
    if clash:
        raise InputError(f"model.options: {clash} are set by seedtrail, not options")
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        params = {}
    kwargs = dict(options)
    kwargs.update({k: v for k, v in context.items() if k in params})
    try:
        inspect.signature(builder).bind((1,), 2, **kwargs)
    except TypeError as err:
        where = "model.options" if options and "keyword" in str(err) else setting
        raise InputError(
            f"{where}: {name} cannot be called as (input_shape, n_classes, **options): {err}"
        ) from None
    except ValueError:
        pass  # no signature to check (a builtin): the call itself will tell
    return kwargs


def check_model(
    model: Any, input_shape: tuple[int, ...], n_classes: int, name: str, setting: str
) -> None:
    """The builder returned a built keras.Model from `input_shape` to (None, n_classes)."""
    import keras

    if not isinstance(model, keras.Model):
        raise InputError(f"{setting}: {name} returned a {type(model).__name__}, not a keras.Model")
    if not model.built:
        try:
            model.build((None, *input_shape))
        except Exception as err:
            raise InputError(
                f"{setting}: {name} returned a model that cannot be built for input "
                f"{input_shape} ({type(err).__name__}); start it with keras.Input(shape=input_shape)"
            ) from None
    outputs = model.outputs if model.outputs else None
    out_shape = tuple(model.output_shape) if outputs is None or len(outputs) == 1 else None
    if out_shape is None:
        raise InputError(
            f"{setting}: {name} returned a model with {len(outputs)} outputs; need one"
        )
    if out_shape != (None, n_classes):
        raise InputError(
            f"{setting}: {name} returned a model with output shape {out_shape}, but the data "
            f"has {n_classes} classes: the output must be (None, {n_classes})"
        )
    in_shape = getattr(model, "input_shape", None)
    if isinstance(in_shape, tuple) and tuple(in_shape[1:]) != tuple(input_shape):
        raise InputError(
            f"{setting}: {name} returned a model with input shape {in_shape}, but the samples "
            f"are {tuple(input_shape)}: build it on keras.Input(shape=input_shape)"
        )


PROBE_ROWS = 4
PROBABILITY_TOLERANCE = 1e-3  # float32 softmax rows sum to 1 within ~1e-6; float16 ~1e-3


def check_probabilities(model: Any, input_shape: tuple[int, ...], name: str, setting: str) -> None:
    """The model's output on a probe batch is class probabilities: rows >= 0 summing to 1.

    The probe is drawn from a local generator (no global RNG is touched) in [0, 1], the
    range of seedtrail's images; a softmax gives probabilities for any input.
    """
    import keras

    rng = np.random.default_rng(0)
    probe = rng.uniform(0.0, 1.0, size=(PROBE_ROWS, *input_shape)).astype(np.float32)
    try:
        # convert_to_numpy: a torch output carries its autograd graph, np.asarray refuses it
        out = np.asarray(keras.ops.convert_to_numpy(model(probe, training=False)), np.float64)
    except Exception as err:
        raise UserCodeError(
            f"{setting}: the model {name} built raised on a probe batch: "
            f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}",
            user_frames(err),
        ) from None
    sums = out.sum(axis=-1)
    if (
        np.all(np.isfinite(out))
        and out.min() >= -PROBABILITY_TOLERANCE
        and np.all(np.abs(sums - 1.0) <= PROBABILITY_TOLERANCE)
    ):
        return
    raise InputError(
        f"{setting}: {name} gives outputs that are not class probabilities (on a probe "
        f"batch: values {out.min():.3g}..{out.max():.3g}, row sums {sums.min():.3g}.."
        f"{sums.max():.3g}); seedtrail trains on probabilities: end the model with a "
        'softmax, e.g. keras.layers.Dense(n_classes, activation="softmax")'
    )


UNSEEDED_HINT = (
    "something in it draws randomness that keras.utils.set_random_seed does not reach: "
    "numpy.random.default_rng() or random.Random() without a seed, the clock (time), "
    "os.urandom or uuid; take the `seed` keyword and seed initializers and Dropout from it"
)


def build_seeded(
    builder: Callable[..., Any],
    input_shape: tuple[int, ...],
    n_classes: int,
    seed: int,
    options: Mapping[str, Any] | None = None,
    x_train: np.ndarray | None = None,
    name: str = "the builder",
    setting: str = "model.builder",
) -> tuple[Any, str]:
    """Build, checked and proven reproducible: (model, fingerprint of its initial weights).

    Builds twice from the same seed; a difference raises InputError naming likely causes.
    """
    tf_runtime.import_tf()
    import keras

    input_shape = tuple(int(d) for d in input_shape)
    # The builder's seed as Keras can take it (folded into int32 under torch only).
    context = {"seed": backends.keras_seed(seed), "x_train": x_train}
    kwargs = builder_arguments(builder, options or {}, context, name, setting)
    fingerprints = []
    model = None
    # Keras' default seeds come from Python's `random`, also for weights created on a
    # model's first call: no other thread may draw from it in between (core/thread_random.py)
    with owned():
        for _ in range(2):
            keras.utils.set_random_seed(seed)  # python random, numpy global, TF, Keras'
            try:
                built = call_user(builder, setting, name, input_shape, n_classes, **kwargs)
            except UserCodeError as err:
                line = backends.seed_overflow(setting, name)
                if line is None or backends.INT32_OVERFLOW not in err.problems[0]:
                    raise
                raise UserCodeError(line, err.frames) from None
            check_model(built, input_shape, n_classes, name, setting)
            fingerprints.append(weights_fingerprint(built))
            if model is None:  # keep the first: built from a fresh seed, as without the check
                model = built
    if fingerprints[0] != fingerprints[1]:
        raise InputError(
            f"{setting}: {name} built different weights twice from the same seed {seed}: "
            + UNSEEDED_HINT
        )
    # On the second, discarded copy: the model that trains is never called before training.
    check_probabilities(built, input_shape, name, setting)
    return model, fingerprints[0]
