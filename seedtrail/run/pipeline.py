"""The training pipeline, stage by stage, as the `train` flow runs it (library code, no flow).

RunSettings -> SeedPlan -> environment -> data -> augment -> split -> model -> train -> evaluate

Each stage is a declared `@stage` (seedtrail/core/stage.py) whose call is a Prefect
task; `run_training` must run inside a flow run (the `train` flow, or verify's).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact

from seedtrail.core.errors import InputError, RunFailed
from seedtrail.core.pipeline_table import STAGES, declared
from seedtrail.core.plots import training_curves
from seedtrail.core.stage_cache import StageContext
from seedtrail.core.stage_result import StageResult
from seedtrail.core.store import store_dir
from seedtrail.inputs import user_inputs
from seedtrail.inputs.augment_pipeline import check_pipeline
from seedtrail.inputs.index import persist_stat_cache
from seedtrail.inputs.pixels import DataChanged
from seedtrail.prefect.names import seed_tag, tag_current_flow_run
from seedtrail.prefect.signals import interruption_types
from seedtrail.run import tensorboard_log
from seedtrail.run.leaderboard import publish_leaderboard
from seedtrail.run.manifest import parse_manifest, read_manifest
from seedtrail.run.report import card_description, run_card
from seedtrail.run.rundir import (
    COMPLETE,
    RunDirectory,
    check_output_dir,
    new_run_id,
    settings_fingerprint,
)
from seedtrail.runtime import tf_runtime
from settings.model import RunSettings
from settings.seeds import SeedPlan, StageName
from tasks import augment, data, environment, evaluate, model, split, train


def code_versions() -> dict[str, str]:
    """Every pipeline stage's code version, as recorded in the manifest (tasks imported above)."""
    return {name: declared(name).code_version for name in STAGES}


def preflight(settings: RunSettings) -> None:
    """Catch bad input before a run directory exists or Prefect starts (cheap: no TensorFlow)."""
    # The CPU can run the requested ISA cap; applied now, as a user's loader may import TF.
    tf_runtime.set_env(settings.determinism)
    # The image folder's index (hashed once; the store's stat cache keeps the hashes for the
    # run itself and for a sweep's other seeds): labels and shape without decoding.
    index = None
    if settings.data.kind == "images":
        index = data.index_folder(settings.data, store_dir(settings.output_dir), persist=False)
    # user code, image folder (from that index, not listed again), pipeline file: referable
    user_inputs.identify(settings, write=False, listing=index.listing() if index else None)
    if index is not None:
        y, modality, shape = index.label_array(), "image", index.sample_shape
    else:
        # prove=True: a loader with unseeded randomness is refused here, before any cache lookup
        ds = data.load_dataset(settings.data, SeedPlan.from_settings(settings)["data"], prove=True)
        y, modality, shape = ds.y, ds.modality, ds.x.shape[1:]
    split.split_sizes(y, settings.split)
    if settings.augment.pipeline is not None and modality == "image" and settings.augment.enabled:
        augmenter = augment.build_augmenter(settings.augment)
        check_pipeline(augmenter, shape, settings.augment.pipeline)
    check_output_dir(settings.output_dir)
    if settings.data.kind == "images" and settings.data.path is not None:
        # All checks passed: keep the hashes, so the run and a sweep's seeds reuse them.
        persist_stat_cache(settings.data.path, store_dir(settings.output_dir))


def will_train(settings: RunSettings, use_cache: bool, resume: Path | None) -> bool:
    """Whether this run will likely need TensorFlow (a guess: it only decides a background import).

    A rerun whose store already holds trained results is probably a cache hit, and a hit
    never imports TensorFlow; a wrong guess costs only the overlap, never correctness.
    """
    if not use_cache or resume is not None:
        return True
    return not (store_dir(settings.output_dir) / "cache" / "train").is_dir()


def _tensorboard(
    run_dir: Path,
    settings: RunSettings,
    fit: StageResult,
    aug: StageResult,
    metrics: dict[str, Any],
) -> dict[str, str]:
    """TensorBoard logs from the run's files (also after a cache hit: no TensorFlow needed).

    Hyperparameters: every flat setting (output_dir is where, not what), the settings and
    final-weights fingerprints; metrics: the scalar test metrics.
    """
    history = json.loads(Path(fit.outputs["history"]).read_text())
    preview = aug.outputs.get("augment_preview")
    values = settings.model_dump(mode="json", exclude={"output_dir"})
    hparams = {
        **tensorboard_log.flat_hparams(values),
        "settings_fingerprint": settings_fingerprint(settings)[:16],
        "fingerprint": fit.fingerprint[:16],
    }
    scalars = {k: v for k, v in metrics.items() if isinstance(v, float)}
    paths = tensorboard_log.write_run_logs(
        run_dir, history, Path(preview) if preview else None, hparams=hparams,
        test_metrics=scalars,
    )  # fmt: skip
    names = {
        p: "hparams" if p.parent.name == tensorboard_log.LOG_DIR else p.parent.name for p in paths
    }
    return {f"tensorboard_{names[p]}": str(p) for p in paths}


def _curves(run_dir: Path, settings: RunSettings, fit: StageResult) -> dict[str, str]:
    """The training curves, titled with the root seed the run card names (and the train
    stage's own): drawn here, not in the stage, whose result may come from another run."""
    history = json.loads(Path(fit.outputs["history"]).read_text())
    path = run_dir / "training_curves.png"
    title = f"root seed {settings.seed} (train seed {fit.seed}) · {settings.training.epochs} epochs"
    training_curves(history, path, title)
    return {"training_curves": str(path)}


class _StopAfter(Exception):
    """Raised after the stage named by `stop_after` (verify can stop early)."""


def _open_run(settings: RunSettings, resume: Path | None) -> RunDirectory:
    if resume is not None:
        try:
            recorded = read_manifest(resume).settings
            if recorded == settings:
                return RunDirectory.reopen(resume)
        except InputError as err:  # not a run, or already complete
            raise InputError([f"--resume: {p}" for p in err.problems]) from None
        raise InputError(f"--resume: {resume} was made with other settings")
    plan = SeedPlan.from_settings(settings)
    s_fp = settings_fingerprint(settings)
    return RunDirectory.create(
        settings.output_dir,
        new_run_id(settings.seed, s_fp),
        header={
            "settings": settings.model_dump(mode="json"),
            "settings_fingerprint": s_fp,
            "seeds": plan.to_manifest(),
            "stage_versions": code_versions(),
        },
    )


def run_training(
    settings: RunSettings,
    stop_after: StageName | None = None,
    use_cache: bool = True,
    resume: Path | None = None,
    card_key: str = "run-card",
    leaderboard: bool = True,
) -> dict[str, Any]:
    """The pipeline, stage by stage; call it inside a flow run. Returns the run's manifest.

    `card_key` is the run card's artifact key: verify's rerun uses its own, so that it
    never becomes the latest `run-card` in the UI, and no leaderboard (`leaderboard=False`).

    `stop_after` ends the run after that stage (status "partial"), e.g. to check data
    and split quickly. `resume` continues an unfinished run directory in place: finished
    stages come from the cache, training from its last checkpoint.
    """
    plan = SeedPlan.from_settings(settings)
    tag_current_flow_run(seed_tag(settings.seed))  # find runs by seed in the UI
    run = _open_run(settings, resume)
    store = store_dir(Path(run.path).parent if resume else settings.output_dir)

    def record(result: StageResult) -> StageResult:
        run.record_stage(result)
        run.add_artifacts(result.outputs)
        if result.stage == "train" and result.cached:
            # A resumed run whose training came from the cache never ran run_train's
            # clean-up: its checkpoints from before the interrupt would stay behind.
            shutil.rmtree(run.path / "checkpoints", ignore_errors=True)
        if result.stage == "train":  # also when the run stops after training
            run.add_artifacts(_curves(run.path, settings, result))
        if result.stage == stop_after:
            raise _StopAfter
        return result

    training = False
    try:
        env = record(environment.run_environment(settings.determinism, plan["environment"]))
        run.set("environment", env.info["environment"])
        user = user_inputs.identify(settings)  # the user's code and files, by content
        run.set(user_inputs.SECTION, user)
        ctx = StageContext(
            run_dir=run.path,
            store=store,
            use_cache=use_cache,
            env_fingerprint=env.fingerprint,
            stack_fingerprint=env.info["stack_fingerprint"],
        )
        data_inputs = user_inputs.key_inputs(
            {k: v for k, v in user.items() if k.startswith("data.")}
        )
        feed = settings.data.feed()  # how image folders are fed: never in a key
        ds = record(data.run_data(ctx, settings.data.keyed(), plan["data"], data_inputs, feed=feed))
        aug = record(augment.run_augment(ctx, settings.augment, plan["augment"], ds))
        idx = record(split.run_split(ctx, settings.split, plan["split"], ds))
        model_inputs = model.builder_inputs(settings.model)  # the builder's source, for the key
        init = record(model.run_model(ctx, settings.model, plan["model"], ds, idx, model_inputs))
        training = True  # from here, a changed input file fails the run; --resume continues
        fit = record(
            train.run_train(
                ctx, settings.training, plan["train"], settings.augment, aug, ds, idx, init,
                feed=feed,
            )
        )  # fmt: skip
        ev = record(
            evaluate.run_evaluate(
                ctx, plan["evaluate"], ds, idx, fit, feed=feed, shards=settings.training.shards
            )
        )
        run.set("metrics", ev.info["metrics"])
        run.add_artifacts(_tensorboard(run.path, settings, fit, aug, ev.info["metrics"]))
        run.finish(COMPLETE)
    except _StopAfter:
        run.finish("partial")
    except InputError as err:
        if isinstance(err, DataChanged) and training:
            # Checkpoints are kept: restore the file and `--resume` continues from them.
            run.finish("failed", error="; ".join(err.problems))
            print(
                f"the run is kept; once the file is restored, resume with:\n"
                f"  python -m flows.train --resume {run.path}",
                file=sys.stderr,
            )
        elif resume is None:
            run.discard()  # bad input: leave nothing behind
        else:
            run.release()  # a later resume, even in this process, may take it again
        raise
    except interruption_types():  # Ctrl-C, or SIGTERM (ours, or Prefect's inside the flow)
        run.finish("interrupted")
        print(
            f"\ninterrupted; the last finished epoch is kept. Resume with:\n"
            f"  python -m flows.train --resume {run.path}",
            file=sys.stderr,
        )
        raise
    except RunFailed as err:  # a full disk: the manifest may not be writable either
        with contextlib.suppress(OSError, RunFailed):
            run.finish("failed", error=str(err))
        raise
    except BaseException as err:
        run.finish("failed", error=f"{type(err).__name__}: {err}")
        raise

    manifest = {**run.manifest, "run_dir": str(run.path)}
    read = parse_manifest(manifest, str(run.path), str(run.path))  # as readers see it
    create_markdown_artifact(
        key=card_key, markdown=run_card(read), description=card_description(read)
    )
    if leaderboard:
        publish_leaderboard(Path(run.path).parent)
    return manifest
