"""`python -m flows.verify RUN_DIR`: rerun a finished run from its manifest and compare stage by stage.

The rerun uses exactly the recorded settings, with `output_dir` replaced by a
fresh directory (where files go never changes what a run computes), and
recomputes every stage (no stage cache). Exit 0
when every stage fingerprint matches, 1 when one differs (the first divergent
stage and the environment differences are named), 2 on bad input.

As a Prefect flow (`verify`), a mismatch ends the flow run Failed, so a
scheduled deployment that verifies a reference run nightly alerts like any
failed run. The verdict is where people look: the last log line (`result: REPRODUCES
(7/7) · …`), the state's message and the start of the `verify-report` artifact's
description. The rerun's own card is `verify-rerun-card`, never `run-card` (the
latest `run-card` stays the real run's).
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # before the imports below (Prefect takes seconds): see check_early
    from seedtrail.cli.check_args import parse_verify_args
    from seedtrail.cli.main import check_early

    check_early(parse_verify_args)

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, Failed, State

from seedtrail.cli.check_args import (
    divergence_options,
    load_recorded,
    parse_verify_args,
    stages_to_verify,
)
from seedtrail.cli.main import run_cli
from seedtrail.compare.explanation import compare_manifests
from seedtrail.prefect.logs import drop_task_completed_lines
from seedtrail.prefect.names import keep_typed_name
from seedtrail.prefect.parameters import form_title
from seedtrail.prefect.server import ensure_api
from seedtrail.run.manifest import MANIFEST
from seedtrail.run.pipeline import preflight, run_training
from seedtrail.runtime import tf_runtime
from settings.model import RunSettings
from settings.seeds import STAGES, StageName

RERUN_CARD_KEY = "verify-rerun-card"


def fresh_output_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="seedtrail-verify-"))


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"verify-{Path(str(flow_run.parameters.get('run_dir', 'run'))).name}"


# Each rerun stage logs its own line; Prefect's "Finished in state Completed()" doubled it.
drop_task_completed_lines()


@flow(
    name="verify",
    flow_run_name=keep_typed_name(_run_name),
    validate_parameters=True,
    description="Rerun a finished run from its manifest and compare every stage's bytes.",
)
def verify_flow(
    run_dir: Annotated[Path, form_title("Run folder")],
    # not None: the UI form shows `Property is type "None"`
    stop_after: Annotated[StageName, form_title("Stop after")] = STAGES[-1],
    output_dir: Annotated[str, form_title("Rerun folder")] = "",
    tolerance: Annotated[str, form_title("Tolerance")] = "",
    against_sweep: Annotated[str, form_title("Against the sweep")] = "",
) -> dict[str, Any] | State:
    """Rerun RUN_DIR from its manifest into a fresh directory and compare every stage.

    Args:
        run_dir: Run directory to verify (holds manifest.json), on the machine that runs this flow.
        stop_after: Verify only the stages up to this one (e.g. split: quick, no training); evaluate: every stage the run recorded.
        output_dir: Folder for the rerun; empty: a new temporary directory.
        tolerance: e.g. accuracy=0.01,loss=0.02: differing bytes within these metric bounds reproduce; empty: bit-exact.
        against_sweep: A finished sweep of these settings: metric differences in units of its seed-to-seed std.
    """
    recorded, settings = load_recorded(run_dir)
    options = divergence_options(tolerance, against_sweep, recorded)
    stages = stages_to_verify(recorded, stop_after)
    out = Path(output_dir) if output_dir else fresh_output_dir()
    # Only where files go changes; run_training records the rest exactly as recorded.
    rerun_settings = settings.model_copy(update={"output_dir": out})
    stop: Any = None if stages[-1] == STAGES[-1] else stages[-1]
    # A cache hit would replay the recorded bytes, not reproduce them: recompute every stage.
    rerun = run_training(
        rerun_settings, stop_after=stop, use_cache=False, card_key=RERUN_CARD_KEY, leaderboard=False
    )
    result = compare_manifests(
        recorded, rerun, labels=("recorded", "new"), stages=stages, title="verify", **options
    )
    result.measure_drift()
    create_markdown_artifact(
        key="verify-report",
        markdown=result.render(markdown=True),
        description=f"{result.verdict()} · verify {recorded.run_id}: {result.headline()}",
    )
    summary = {
        **result.to_dict(),
        "rerun_dir": rerun["run_dir"],
        "report": f"{result.render()}\nrerun directory: {rerun['run_dir']}",
    }
    message = f"{result.verdict()}: {result.headline()}"
    get_run_logger().info("result: %s · rerun directory %s", message, rerun["run_dir"])
    if result.exit_code:  # a run within --tolerance exits 0
        return Failed(message=message, data=summary)
    return Completed(message=message, data=summary)


def main(argv: list[str]) -> int:
    # Checks everything cheap before Prefect starts: bad input is one line, no traceback.
    args, settings = parse_verify_args(argv)
    if args.output_dir is not None:
        return _verify(args, settings, args.output_dir)
    out = fresh_output_dir()
    try:
        return _verify(args, settings, out)
    finally:
        remove_if_no_run(out)


def _verify(args: argparse.Namespace, settings: RunSettings, out: Path) -> int:
    preflight(settings.model_copy(update={"output_dir": out}))
    if args.stop_after is None or STAGES.index(args.stop_after) >= STAGES.index("model"):
        # Import TensorFlow while Prefect starts its server: the two waits overlap.
        tf_runtime.import_tf_in_background(settings.determinism)
    ensure_api()
    state = verify_flow(
        args.run_dir,
        args.stop_after or STAGES[-1],
        str(out),
        args.tolerance,
        str(args.against_sweep or ""),
        return_state=True,
    )
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, BaseException):
        raise summary
    print(f"\n{summary['report']}")
    return int(summary["exit_code"])


def remove_if_no_run(out: Path) -> None:
    """A temp dir that holds no run directory (bad input, a failure before the rerun) goes."""
    if not any(out.glob(f"*/{MANIFEST}")):
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
