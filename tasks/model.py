"""Model stage: build the initial Keras model with a builder (seedtrail/inputs/model_builder.py).

The builder is the user's `model.builder`, or seedtrail's own CNN/MLP
(seedtrail/inputs/builtin_models.py, explicit seeds on every layer). Either is called after
seeding everything from the model stage's seed, built twice and compared, and
checked to give (None, n_classes); its source is part of the cache key.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from seedtrail.core.errors import InputError
from seedtrail.core.stage import stage
from seedtrail.core.stage_cache import StageContext
from seedtrail.core.stage_result import StageOutput, StageResult
from seedtrail.core.store import load_arrays
from seedtrail.inputs import builtin_models, records, user_code
from seedtrail.inputs.model_builder import build_seeded
from seedtrail.inputs.user_inputs import key_inputs, model_inputs
from seedtrail.runtime import backends, tf_runtime
from seedtrail.runtime.keras_io import load_model, save_model
from settings.model import ModelSettings

BUILTIN = {
    "image": "seedtrail.inputs.builtin_models:cnn",
    "tabular": "seedtrail.inputs.builtin_models:mlp",
}


def select_builder(s: ModelSettings, modality: str) -> tuple[Callable[..., Any], dict, str]:
    """(builder, options, name): the user's model.builder with model.options, else the
    built-in CNN (images) or MLP (tables) with the model.* fields as options."""
    if s.builder is not None:
        return user_code.resolve(s.builder, "model.builder"), dict(s.options), s.builder
    common = {"dense_units": s.dense_units, "dropout": s.dropout}
    if modality == "image":
        return builtin_models.cnn, {"conv_filters": s.conv_filters, **common}, BUILTIN[modality]
    return builtin_models.mlp, common, BUILTIN["tabular"]


def builder_inputs(s: ModelSettings) -> dict[str, str]:
    """What the model stage's key must cover beyond this module's own source (the stage's
    code version): the user's builder code, or the built-in builders' module."""
    user = key_inputs(model_inputs(s))
    if user:
        return user
    source = Path(builtin_models.__file__).read_bytes()
    return {"seedtrail.inputs.builtin_models": hashlib.sha256(source).hexdigest()}


def build_model(
    s: ModelSettings,
    seed: int,
    input_shape: tuple[int, ...],
    n_classes: int,
    modality: str,
    x_train: np.ndarray | None = None,
):
    """The initial model the settings describe, seeded, checked and built twice to prove it."""
    builder, options, name = select_builder(s, modality)
    model, _ = build_seeded(builder, input_shape, n_classes, seed, options, x_train, name)
    return model


def _check_loads_back(path: Path, name: str) -> None:
    """The train stage reloads the file: a custom layer Keras cannot rebuild fails here."""
    try:
        load_model(path)
    except Exception as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise InputError(
            f"model.builder: {name} built a model that Keras cannot load back from .keras "
            f"({first[:200]}); decorate custom layers with "
            "@keras.saving.register_keras_serializable()"
        ) from None


@stage()
def run_model(
    ctx: StageContext,
    s: ModelSettings,
    seed: int,
    data: StageResult,
    split: StageResult,
    user_inputs: dict[str, str] | None = None,
) -> StageOutput:
    """`user_inputs`: `builder_inputs(s)`, the builder's source hashes, for the key."""
    tf_runtime.configured_tf()  # before user code: it may import TensorFlow itself
    info = data.info
    builder, options, name = select_builder(s, info["modality"])
    x_train = None
    if "x_train" in inspect.signature(builder).parameters:  # e.g. standardization statistics
        train = load_arrays(Path(split.outputs["indices"]), split.fingerprint)["train"]
        x_train = records.images(data, train, ctx.store)
    model, fp = build_seeded(
        builder, tuple(info["sample_shape"]), info["n_classes"], seed, options, x_train, name
    )
    path = ctx.store / "models" / f"{fp}.keras"
    save_model(model, path, owned=True)
    # Under torch the builder got the seed folded into int32 (backends.keras_seed): recorded.
    torch_only = {}
    if backends.folds_seeds():
        torch_only = {"builder_seed": backends.keras_seed(seed)}
    if s.builder is not None:
        _check_loads_back(path, name)
    return StageOutput(
        fp,
        outputs={"initial_model": str(path)},
        info={
            "parameters": int(model.count_params()),
            "fingerprint_of": "initial weights",
            "builder": name,
            **torch_only,
        },
    )


# --- wiring: how the pipeline feeds this stage (seedtrail/core/wiring.py); not in its code version
def _check(p) -> None:
    """The builder's module and function exist (read, not imported: no TensorFlow yet)."""
    model_inputs(p.settings.model)


run_model.wire(key_inputs=lambda settings, user: builder_inputs(settings.model), check=_check)
