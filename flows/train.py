"""`python -m flows.train`: one reproducible training run, every stage a Prefect task.

The one `train` flow: the CLI, `flows.serve`, `prefect deploy` and sweeps all run
this flow. Its parameters are RunSettings' fields, one per section (Prefect
merges a custom run's parameters at the top level only: seedtrail/prefect/parameters.py),
plus three run options that never change what is computed. The pipeline itself
is seedtrail/run/pipeline.py.
"""

# No `from __future__ import annotations`: the parameter annotations are built at
# import time from RunSettings, and Prefect reads them from the signature.

import sys

if __name__ == "__main__":  # before the imports below (Prefect takes seconds): see check_early
    from seedtrail.cli.main import check_early
    from seedtrail.cli.train_args import check_train_args

    check_early(check_train_args)

from pathlib import Path
from typing import Annotated, Any

from prefect import flow, get_run_logger, tags
from prefect.states import State
from pydantic import ValidationError

from seedtrail.cli.main import run_cli
from seedtrail.cli.train_args import parse_train_args
from seedtrail.core.errors import InputError, RunFailed
from seedtrail.core.pipeline_table import STAGES
from seedtrail.prefect.logs import (
    clean_failure,
    drop_input_error_lines,
    drop_task_completed_lines,
    quiet_input_error_tracebacks,
)
from seedtrail.prefect.names import keep_typed_name, seed_tag
from seedtrail.prefect.parameters import (
    form_title,
    setting_annotation,
    settings_from_parameters,
    settings_parameters,
    with_settings_docstring,
)
from seedtrail.prefect.server import ensure_api
from seedtrail.run.manifest import parse_manifest
from seedtrail.run.pipeline import preflight, run_training, will_train
from seedtrail.run.report import result_line, terminal_summary
from seedtrail.run.rundir import settings_fingerprint
from seedtrail.runtime import tf_runtime
from settings.cli import format_validation_error
from settings.model import RunSettings
from settings.seeds import StageName

_DEFAULTS = RunSettings()
# Also in served and worker runs, which import this module before running the flow.
quiet_input_error_tracebacks()
drop_task_completed_lines()


def flow_run_name() -> str:
    from prefect.runtime import flow_run

    params = dict(flow_run.parameters)
    try:
        s = settings_from_parameters(params)
    except ValidationError:  # the run fails on its parameters next; still say which seed
        return f"train-seed{params.get('seed', '?')}-invalid"
    return f"train-seed{s.seed}-{settings_fingerprint(s)[:8]}"


def _fail(problems: list[str], error: InputError | RunFailed | None = None) -> State:
    """End the run Failed with one line (also logged as the run's error), no traceback.

    A UserCodeError's frames (the user's own files only) follow the line in the log.
    """
    message = "; ".join(problems)
    state = clean_failure(message, error)
    frames = getattr(error, "frames", "")
    get_run_logger().error("cannot run: %s%s", message, f"\n{frames}" if frames else "")
    return state


def _run_options_problems(stop_after: Any, resume: Any) -> list[str]:
    problems = []
    if stop_after is not None and stop_after not in STAGES:
        problems.append(f"stop_after: must be one of {', '.join(STAGES)} (got {stop_after!r})")
    if resume is not None and not isinstance(resume, str | Path):
        problems.append(f"resume: must be a run directory (got {resume!r})")
    return problems


# The run options never change what is computed. No None defaults: the UI form shows an
# optional parameter as a type switch (`Property is type "None"`); "evaluate" (the last
# stage) and "" mean the same as None did.
RUN_OPTIONS = {
    "stop_after": "Last stage to run: evaluate (the default) runs them all; an earlier stage "
    "ends the run there (status partial).",
    "use_cache": "Reuse verified cached stage results (same bytes); off recomputes every stage.",
    "resume": "An interrupted run directory to continue in place, with its own settings; "
    "empty: a new run.",
}


# validate_parameters=False: the flow checks its own parameters, so that a run that fails on
# them ends with one line, not Prefect's traceback (seedtrail/prefect/logs.py: clean_failure).
@flow(
    name="train",
    flow_run_name=keep_typed_name(flow_run_name),
    validate_parameters=False,
    description="Train one Keras model reproducibly: one parameter per settings section.",
)
@with_settings_docstring(**RUN_OPTIONS)
def train_flow(
    seed: setting_annotation("seed") = _DEFAULTS.seed,
    output_dir: setting_annotation("output_dir") = _DEFAULTS.output_dir,
    data: setting_annotation("data") = _DEFAULTS.data,
    augment: setting_annotation("augment") = _DEFAULTS.augment,
    split: setting_annotation("split") = _DEFAULTS.split,
    model: setting_annotation("model") = _DEFAULTS.model,
    training: setting_annotation("training") = _DEFAULTS.training,
    determinism: setting_annotation("determinism") = _DEFAULTS.determinism,
    seeds: setting_annotation("seeds") = _DEFAULTS.seeds,
    stop_after: Annotated[StageName, form_title("Stop after")] = STAGES[-1],
    use_cache: Annotated[bool, form_title("Use the stage cache")] = True,
    resume: Annotated[str, form_title("Resume run directory")] = "",
) -> dict[str, Any] | State:
    """Train one Keras model reproducibly; returns the run's manifest.

    stop_after ends the run after that stage (status "partial"); use_cache=False
    recomputes every stage; resume continues an unfinished run directory in place.
    """
    values = dict(seed=seed, output_dir=output_dir, data=data, augment=augment, split=split,
                  model=model, training=training, determinism=determinism, seeds=seeds)  # fmt: skip
    try:
        settings = RunSettings.model_validate(values)
        problems = []
    except ValidationError as err:
        problems = format_validation_error(err)
    problems += _run_options_problems(stop_after, resume)
    if problems:
        return _fail(problems)
    resume_dir = Path(resume) if resume else None
    stop = None if stop_after in (None, STAGES[-1]) else stop_after
    with tags(seed_tag(settings.seed)):  # the task runs carry the seed too
        try:
            if resume_dir is None:
                preflight(settings)
            manifest = run_training(settings, stop, bool(use_cache), resume_dir)
        except InputError as err:
            return _fail(err.problems, err)
        except RunFailed as err:  # a full disk: one line; the run is marked failed
            return _fail([str(err)], err)
    run_dir = manifest["run_dir"]
    get_run_logger().info(result_line(parse_manifest(manifest, run_dir, run_dir)))
    return manifest


def main(argv: list[str]) -> int:
    args = parse_train_args(argv)
    settings = args.settings
    if args.resume is not None:
        preflight(settings.model_copy(update={"output_dir": args.resume.parent}))
    else:
        preflight(settings)
    drop_task_completed_lines()
    drop_input_error_lines()
    if will_train(settings, use_cache=args.use_cache, resume=args.resume):
        # Import TensorFlow while Prefect starts its server: the two waits overlap.
        tf_runtime.import_tf_in_background(settings.determinism)
    ensure_api()
    manifest = train_flow(
        **settings_parameters(settings), use_cache=args.use_cache, resume=args.resume or ""
    )
    run_dir = manifest["run_dir"]
    print(terminal_summary(parse_manifest(manifest, run_dir, run_dir)))
    return 0


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
