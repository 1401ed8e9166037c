"""The whole configuration of a run, as frozen pydantic models.

`RunSettings` is the Prefect flow parameter: Prefect renders its JSON schema as
the UI form and validates runs against it, so every field has a description,
bounds and a default. Nothing here reads the environment (see `settings.cli`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from seedtrail.core.pipeline_table import PIPELINE
from settings.form import form_schema
from settings.validation import (
    CODE_REF_PATTERN,
    NonEmptyPath,
    code_ref,
    infer_path_kind,
    refuse_bool_for_number,
    shard_problem,
)

MAX_SEED = 2**32 - 1

DataKind = Literal["synthetic", "digits", "tabular", "file", "images", "python"]
CpuIsa = Literal["portable", "native", "avx512", "avx2", "avx", "sse41"]
OnednnOps = Literal["off", "on", "default"]
Backend = Literal["tensorflow", "jax", "torch"]
ConvFilters = Annotated[int, Field(ge=1, le=1024)]


class Section(BaseModel):
    """Base of every settings model: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=form_schema)
    form_title: ClassVar[str]

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_bool_for_number(cls.model_fields, value, info)


class DataSettings(Section):
    """Where the samples come from."""

    form_title = "Data"

    kind: DataKind = Field(
        "synthetic",
        description="synthetic: noisy shapes images (needs a CNN); digits: scikit-learn's 8x8 "
        "digits; tabular: random binary classification table; file: your .npz or .csv (data.path); "
        "images: your folder of class subfolders (data.path); python: your loader (data.loader). "
        "Unset: inferred, python with data.loader, images for a data.path folder, file for a "
        "data.path .npz or .csv.",
    )
    path: NonEmptyPath | None = Field(
        None,
        description="kind=file: .npz with arrays x and y, or .csv with a label column. "
        "kind=images: a folder with one subfolder of PNG/JPEG images per class.",
    )
    loader: str | None = Field(
        None,
        max_length=200,
        json_schema_extra={"pattern": CODE_REF_PATTERN},  # the UI checks it; the validator says why
        description="kind=python: package.module:function(seed) -> (x, y[, class_names]); "
        "its source and the project modules it imports are hashed into the cache key.",
    )
    label_column: str = Field(
        "label", min_length=1, description="Name of the label column in a .csv data file."
    )
    n_samples: int = Field(
        1200, ge=60, le=200_000, description="Samples to generate (synthetic and tabular)."
    )
    image_size: int = Field(
        24,
        ge=12,
        le=128,
        description="Side in pixels of the synthetic images, and of folder images (resized).",
    )
    n_classes: int = Field(
        4,
        ge=2,
        le=4,
        description="Shape classes in the synthetic set (circle, square, triangle, cross).",
    )
    noise: float = Field(
        0.15, ge=0.0, le=1.0, description="Std of the Gaussian pixel noise of the synthetic set."
    )
    n_features: int = Field(20, ge=2, le=1000, description="Features of the tabular set.")
    # How image folders are fed; neither changes a byte (tests/test_stream.py), so neither
    # is in a cache key (seedtrail/run/pipeline.py passes them beside the keyed settings).
    workers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="kind=images: threads that hash, decode and augment samples; empty: the "
        "cores this process may use (at most 8). Never changes the bytes.",
    )
    cache: bool = Field(
        True,
        description="kind=images: keep the images decoded and resized (uint8) in the store, "
        "so epochs after the first skip decoding. Never changes the bytes.",
    )

    def keyed(self) -> DataSettings:
        """These settings without the ones that only say how to feed (not in cache keys)."""
        return self.model_copy(update={"workers": None, "cache": True})

    def feed(self) -> dict[str, Any]:
        return {"workers": self.workers, "cache": self.cache}

    @field_validator("loader")
    @classmethod
    def _loader_is_ref(cls, value: str | None) -> str | None:
        return code_ref(value)

    @model_validator(mode="before")
    @classmethod
    def _infer_kind(cls, values: Any) -> Any:
        """data.kind left unset, with data.loader or data.path given: the kind they imply.

        Without this, `--data.path f.npz` alone trained on the synthetic set, silently.
        """
        if not isinstance(values, dict) or values.get("kind") is not None:
            return values
        loader, path = values.get("loader"), values.get("path")
        if loader is not None and path is not None:
            raise ValueError(
                "data.loader and data.path are both set: set data.kind (python or file/images)"
            )
        if loader is not None:
            return {**values, "kind": "python"}
        if path is not None and not (isinstance(path, str) and not path.strip()):
            return {**values, "kind": infer_path_kind(Path(path))}
        return values

    @model_validator(mode="after")
    def _source_given(self) -> DataSettings:
        if self.kind in ("file", "images") and self.path is None:
            raise ValueError(f"data.kind={self.kind} needs data.path")
        if self.kind == "python" and self.loader is None:
            raise ValueError("data.kind=python needs data.loader (package.module:function)")
        # Set but never read: the run would train on other data than the user meant.
        if self.path is not None and self.kind not in ("file", "images"):
            raise ValueError(
                f"data.path is read only with data.kind=file or images (data.kind={self.kind})"
            )
        if self.loader is not None and self.kind != "python":
            raise ValueError(
                f"data.loader is read only with data.kind=python (data.kind={self.kind})"
            )
        return self


class AugmentSettings(Section):
    """The albumentations pipeline applied to training images, fresh each epoch."""

    form_title = "Augmentation"

    enabled: bool = Field(True, description="Augment training images (ignored for tabular data).")
    pipeline: Path | None = Field(
        None,
        description="Your albumentations pipeline file (JSON or YAML from albumentations.save), "
        "used instead of the built-in one (hflip_p .. noise_std are then ignored); "
        "still seeded per sample, its content hashed into the cache key.",
    )
    hflip_p: float = Field(0.5, ge=0.0, le=1.0, description="Probability of a horizontal flip.")
    rotate_limit: float = Field(
        15.0, ge=0.0, le=180.0, description="Largest rotation, in degrees, either way."
    )
    shift_limit: float = Field(
        0.1, ge=0.0, le=0.5, description="Largest shift, as a fraction of the image side."
    )
    scale_limit: float = Field(
        0.1, ge=0.0, le=0.5, description="Largest zoom in or out, as a fraction."
    )
    brightness_limit: float = Field(
        0.1, ge=0.0, le=1.0, description="Largest brightness and contrast change, as a fraction."
    )
    noise_std: float = Field(
        0.02, ge=0.0, le=0.5, description="Upper bound of the added Gaussian noise std (0 = off)."
    )
    preview_samples: int = Field(
        16, ge=1, le=64, description="Augmented samples shown in augment_preview.png."
    )


class SplitSettings(Section):
    """Stratified train/validation/test split."""

    form_title = "Split"

    test_size: float = Field(
        0.2, gt=0.0, lt=1.0, description="Fraction of all samples held out for the test split."
    )
    val_size: float = Field(
        0.1, gt=0.0, lt=1.0, description="Fraction of all samples used for validation."
    )

    @model_validator(mode="after")
    def _leaves_training_data(self) -> SplitSettings:
        if self.test_size + self.val_size >= 0.9:
            raise ValueError(
                f"split.test_size + split.val_size must be below 0.9 "
                f"(got {self.test_size} + {self.val_size})"
            )
        return self


class ModelSettings(Section):
    """The Keras model: your builder, or the built-in small CNN (images) / MLP (tables)."""

    form_title = "Model"

    builder: str | None = Field(
        None,
        max_length=200,
        json_schema_extra={"pattern": CODE_REF_PATTERN},  # the UI checks it; the validator says why
        description="package.module:function(input_shape, n_classes, **options) returning a "
        "keras.Model; empty: the built-in CNN or MLP (conv_filters, dense_units, dropout).",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        max_length=64,
        description='Keyword options for model.builder, a JSON object, e.g. {"filters": [8, 16]}.',
    )

    conv_filters: tuple[ConvFilters, ...] = Field(
        (16, 32),
        min_length=1,
        max_length=4,
        description="Filters of each conv block (conv 3x3 + max-pool) of the CNN, 1 to 1024 each.",
    )
    dense_units: int = Field(64, ge=1, le=4096, description="Units of the hidden dense layer.")
    dropout: float = Field(0.25, ge=0.0, lt=1.0, description="Dropout rate before the output.")

    @field_validator("builder")
    @classmethod
    def _builder_is_ref(cls, value: str | None) -> str | None:
        return code_ref(value)

    @model_validator(mode="after")
    def _options_need_builder(self) -> ModelSettings:
        if self.options and self.builder is None:
            raise ValueError("model.options are for model.builder; set model.builder too")
        return self


class TrainingSettings(Section):
    """The optimisation loop."""

    form_title = "Training"

    epochs: int = Field(10, ge=1, le=1000, description="Passes over the training split.")
    batch_size: int = Field(32, ge=1, le=8192, description="Samples per gradient step.")
    learning_rate: float = Field(
        0.003, gt=0.0, le=1.0, description="Learning rate of the optimizer."
    )
    optimizer: Literal["adam", "sgd"] = Field("adam", description="Optimizer.")
    # 1 keeps the single-shard step (and its bytes); docs/parallelism.md measures the rest.
    shards: int = Field(
        1,
        ge=1,
        le=8192,
        description="Fixed shards each batch is split into, computed in parallel on the "
        "inter-op threads; the weights depend on it (not on the cores). Must divide batch_size.",
    )

    @model_validator(mode="after")
    def _shards_divide_batch(self) -> TrainingSettings:
        if problem := shard_problem(self.shards, self.batch_size):
            raise ValueError(problem)
        return self


class DeterminismSettings(Section):
    """Settings that change the bytes of a run on the same machine; pinned, never inferred."""

    form_title = "Determinism"

    # Set as KERAS_BACKEND before Keras loads, in every process that builds or trains
    # (seedtrail/runtime/backends.py); part of the environment record, so the model, train
    # and evaluate keys depend on it and data, augment and split do not (docs/backends.md).
    backend: Backend = Field(
        "tensorflow",
        description="Keras backend (KERAS_BACKEND): tensorflow, jax (the `jax` extra) or torch "
        "(the `torch` extra); each gets its own determinism flags.",
    )
    op_determinism: bool = Field(
        True, description="tf.config.experimental.enable_op_determinism() before the first op."
    )
    # One thread: as fast as two for these small models on 2 cores, the same bytes on any
    # machine, and parallel sweeps scale by processes without oversubscribing cores.
    intra_op_threads: int = Field(
        1, ge=1, le=256, description="TensorFlow intra-op threads (CPU weights depend on it)."
    )
    # Measured: the weights never depend on it (docs/parallelism.md), so it is left out of
    # the settings fingerprint and the cache keys; unset, it follows the machine.
    inter_op_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="TensorFlow inter-op threads, which run independent ops (the shards of "
        "training.shards) at once; the weights do not depend on it. Empty: the machine's cores "
        "(divided among a sweep's workers).",
    )
    # The portable profile, measured (docs/portability.md): with TensorFlow's oneDNN
    # ops off and oneDNN's remaining kernels (sgemm) capped at AVX2, an AVX-512 Zen 4 gives
    # the weights an AVX2 Zen 3 gives by default (tests/golden/), for 1.24x the training
    # time there. Every CPU with AVX2 and FMA (x86 since 2013) can run it.
    cpu_isa: CpuIsa = Field(
        "portable",
        description="Most advanced x86 instruction set oneDNN may use (sets ONEDNN_MAX_CPU_ISA "
        "before TensorFlow loads): portable (avx2 on x86-64: bytes that travel, with "
        "onednn_ops off), native (the CPU's best), avx512, avx2, avx or sse41.",
    )
    onednn_ops: OnednnOps = Field(
        "off",
        description="TensorFlow's oneDNN ops (sets TF_ENABLE_ONEDNN_OPTS before TensorFlow "
        "loads): off (Eigen kernels, the portable default), on, or default (TensorFlow's own "
        "choice: on only for CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX).",
    )


def _seed_field(description: str) -> Any:
    return (int | None, Field(None, ge=0, le=MAX_SEED, description=description))


# One optional field per pipeline stage, from the registry (a Prefect UI form).
SeedOverrides = create_model(
    "SeedOverrides",
    __base__=Section,
    __doc__="Pin one stage's seed instead of deriving it from the root seed.",
    __module__=__name__,
    **{s.name: _seed_field(s.seed_description) for s in PIPELINE},
)
SeedOverrides.form_title = "Seed pins"


class RunSettings(Section):
    """Everything that defines one training run. Same settings, same bytes."""

    form_title = "Settings"

    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Root seed; every stage seed derives from it."
    )
    output_dir: NonEmptyPath = Field(
        Path("runs"), description="Folder that receives the run directories."
    )
    data: DataSettings = Field(default_factory=DataSettings, description="Data source.")
    augment: AugmentSettings = Field(default_factory=AugmentSettings, description="Augmentation.")
    split: SplitSettings = Field(default_factory=SplitSettings, description="Data split.")
    model: ModelSettings = Field(default_factory=ModelSettings, description="Model architecture.")
    training: TrainingSettings = Field(default_factory=TrainingSettings, description="Training.")
    determinism: DeterminismSettings = Field(
        default_factory=DeterminismSettings, description="Determinism and threads."
    )
    seeds: SeedOverrides = Field(
        default_factory=SeedOverrides, description="Per-stage seed overrides."
    )
