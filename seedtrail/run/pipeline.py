"""The training pipeline, stage by stage, as the `train` flow runs it (library code, no flow).

RunSettings -> SeedPlan -> environment -> data -> augment -> split -> model -> train -> evaluate

A loop over the pipeline table (seedtrail/core/pipeline_table.py): each stage is a declared
`@stage` (seedtrail/core/stage.py) whose call is a Prefect task, fed as its table line and
its module's wiring say (seedtrail/core/wiring.py). `run_training` must run inside a flow
run (the `train` flow, or verify's).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact

from seedtrail.core import pipeline_table as table
from seedtrail.core.errors import InputError, RunFailed
from seedtrail.core.pipeline_table import EPOCH_STAGE, StageSpec, check_table, declared
from seedtrail.core.stage import DeclaredStage
from seedtrail.core.stage_cache import StageContext
from seedtrail.core.stage_result import StageResult
from seedtrail.core.store import store_dir
from seedtrail.core.wiring import Preflight, UserInputs
from seedtrail.inputs import user_inputs
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
from settings.model import RunSettings
from settings.seeds import SeedPlan, StageName

#: Run-function parameters the framework fills itself (seedtrail/core/stage.py).
_FRAMEWORK = ("ctx", "seed", "cache_key")


def stages() -> list[tuple[StageSpec, DeclaredStage]]:
    """The table's stages with their declarations (each module imported: it declares itself)."""
    pipeline = table.pipeline()
    check_table(pipeline)
    for spec in pipeline:
        importlib.import_module(spec.module)
    return [(spec, declared(spec.name)) for spec in pipeline]


def code_versions() -> dict[str, str]:
    """Every pipeline stage's code version, as recorded in the manifest."""
    return {spec.name: stage.code_version for spec, stage in stages()}


def stage_arguments(
    spec: StageSpec,
    stage: DeclaredStage,
    settings: RunSettings,
    seed: int,
    results: dict[str, StageResult],
    ctx: StageContext | None,
    user: UserInputs,
) -> dict[str, Any]:
    """The run function's arguments, by name, from the table line and the wiring.

    Every parameter without a default must be filled, and nothing may be passed that it
    does not take: a wiring mistake fails here, by name, never as a stale cache key.
    """
    params = stage.signature.parameters
    args: dict[str, Any] = {"seed": seed}
    if "ctx" in params:
        if ctx is None:
            raise ValueError(f"stage {spec.name} takes ctx but runs before the environment")
        args["ctx"] = ctx
    if spec.settings is not None:
        args["s"] = getattr(settings, spec.settings)
    for name in spec.reads:
        args[name if name in params else f"{name}_stage"] = results[name]
    wiring = stage.wiring
    if wiring.arguments is not None:
        args.update(wiring.arguments(settings))
    if "user_inputs" in params:
        if wiring.key_inputs is None:
            raise ValueError(f"stage {spec.name} takes user_inputs but declares no key_inputs")
        args["user_inputs"] = wiring.key_inputs(settings, user)
    unknown = sorted(set(args) - set(params))
    missing = sorted(
        n
        for n, p in params.items()
        if n not in args and n not in _FRAMEWORK and p.default is p.empty
    )
    if unknown or missing:
        raise ValueError(
            f"stage {spec.name}: wiring passes {unknown or 'nothing unknown'}, "
            f"misses {missing or 'nothing'} (its run function takes {list(params)})"
        )
    return args


def preflight(settings: RunSettings) -> None:
    """Catch bad input before a run directory exists or Prefect starts (cheap: no TensorFlow).

    Each stage's declared check, in pipeline order (the environment's first: it applies the
    ISA cap before a user's loader may import TensorFlow); then the output folder.
    """
    plan = SeedPlan.from_settings(settings)
    p = Preflight(settings, store_dir(settings.output_dir), plan.seeds)
    for _, stage in stages():
        if stage.wiring.check is not None:
            stage.wiring.check(p)
    check_output_dir(settings.output_dir)
    for commit in p.commits:
        commit()


def will_train(settings: RunSettings, use_cache: bool, resume: Path | None) -> bool:
    """Whether this run will likely need TensorFlow (a guess: it only decides a background import).

    A rerun whose store already holds trained results is probably a cache hit, and a hit
    never imports TensorFlow; a wrong guess costs only the overlap, never correctness.
    """
    if not use_cache or resume is not None:
        return True
    return not (store_dir(settings.output_dir) / "cache" / EPOCH_STAGE).is_dir()


def _tensorboard(
    run: RunDirectory, settings: RunSettings, results: dict[str, StageResult]
) -> dict[str, str]:
    """TensorBoard logs from the run's files (also after a cache hit: no TensorFlow needed).

    Hyperparameters: every flat setting (output_dir is where, not what), the settings and
    final-weights fingerprints; metrics: the scalar test metrics; images: the augment preview.
    """
    fit = results[EPOCH_STAGE]
    history = json.loads(Path(fit.outputs["history"]).read_text())
    outputs = [r.outputs for r in results.values()]
    preview = next((o["augment_preview"] for o in outputs if "augment_preview" in o), None)
    values = settings.model_dump(mode="json", exclude={"output_dir"})
    hparams = {
        **tensorboard_log.flat_hparams(values),
        "settings_fingerprint": settings_fingerprint(settings)[:16],
        "fingerprint": fit.fingerprint[:16],
    }
    metrics = run.manifest.get("metrics") or {}
    scalars = {k: v for k, v in metrics.items() if isinstance(v, float)}
    paths = tensorboard_log.write_run_logs(
        run.path, history, Path(preview) if preview else None, hparams=hparams,
        test_metrics=scalars,
    )  # fmt: skip
    names = {
        p: "hparams" if p.parent.name == tensorboard_log.LOG_DIR else p.parent.name for p in paths
    }
    return {f"tensorboard_{names[p]}": str(p) for p in paths}


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

    def record(spec: StageSpec, stage: DeclaredStage, result: StageResult) -> None:
        run.record_stage(result)
        run.add_artifacts(result.outputs)
        for section in spec.manifest:
            run.set(section, result.info[section])
        if result.cached and stage.wiring.on_cache_hit is not None:
            stage.wiring.on_cache_hit(run.path)
        if stage.wiring.artifacts is not None:  # also when the run stops after this stage
            run.add_artifacts(stage.wiring.artifacts(settings, result, run.path))
        if spec.name == stop_after:
            raise _StopAfter

    training = False
    results: dict[str, StageResult] = {}
    ctx: StageContext | None = None
    user: UserInputs = {}
    try:
        for spec, stage in stages():
            # from training on, a changed input file fails the run; --resume continues
            training = training or spec.records_epochs
            args = stage_arguments(spec, stage, settings, plan[spec.name], results, ctx, user)
            results[spec.name] = result = stage(**args)
            record(spec, stage, result)
            if spec.describes_environment:  # the later stages' context, and the user's inputs
                user = user_inputs.identify(settings)  # the user's code and files, by content
                run.set(user_inputs.SECTION, user)
                ctx = StageContext(
                    run_dir=run.path,
                    store=store,
                    use_cache=use_cache,
                    env_fingerprint=result.fingerprint,
                    stack_fingerprint=result.info["stack_fingerprint"],
                )
        run.add_artifacts(_tensorboard(run, settings, results))
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
