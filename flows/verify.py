"""`python -m flows.verify RUN_DIR`: rerun a finished run from its manifest and compare stage by stage.

The rerun uses exactly the recorded settings, with `output_dir` replaced by a
fresh directory (where files go never changes what a run computes), and
recomputes every stage (no stage cache). Exit 0
when every stage fingerprint matches, 1 when one differs (the first divergent
stage and the environment differences are named), 2 on bad input.

As a Prefect flow (`verify`), a mismatch ends the flow run Failed, so a
scheduled deployment that verifies a reference run nightly alerts like any
failed run; the report is the markdown artifact `verify-report`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.states import Failed, State

from seedtrail import tf_runtime
from seedtrail.cli import run_cli
from seedtrail.compare import compare_manifests, read_run
from seedtrail.errors import InputError
from seedtrail.manifest import MANIFEST, Manifest
from seedtrail.pipeline import preflight, run_training
from seedtrail.prefect_compat import keep_typed_name
from settings.cli import _RaisingParser
from settings.model import RunSettings
from settings.seeds import STAGES, Stage


def load_recorded(run_dir: Path) -> tuple[Manifest, RunSettings]:
    """The recorded manifest and its settings, or InputError naming the problem."""
    manifest = read_run(run_dir)  # its settings are validated RunSettings
    return manifest, manifest.settings


def stages_to_verify(manifest: Manifest, stop_after: str | None) -> tuple[str, ...]:
    """Stages up to `stop_after`, and never past the last stage the recorded run finished."""
    recorded = [s for s in STAGES if s in manifest.stages]
    if not recorded:
        raise InputError(f"{manifest.run_dir}: the run recorded no stage; nothing to verify")
    last = recorded[-1]
    if stop_after is not None and STAGES.index(stop_after) < STAGES.index(last):
        last = stop_after
    return STAGES[: STAGES.index(last) + 1]


def fresh_output_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="seedtrail-verify-"))


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"verify-{Path(str(flow_run.parameters.get('run_dir', 'run'))).name}"


@flow(
    name="verify",
    flow_run_name=keep_typed_name(_run_name),
    validate_parameters=True,
    description="Rerun a finished run from its manifest and compare every stage's bytes.",
)
def verify_flow(
    run_dir: Path,
    stop_after: Stage = STAGES[-1],  # not None: the UI form shows `Property is type "None"`
    output_dir: str = "",
) -> dict[str, Any] | State:
    """Rerun RUN_DIR from its manifest into a fresh directory and compare every stage.

    Args:
        run_dir: Run directory to verify (holds manifest.json), on the machine that runs this flow.
        stop_after: Verify only the stages up to this one (e.g. split: quick, no training); evaluate: every stage the run recorded.
        output_dir: Folder for the rerun; empty: a new temporary directory.
    """
    recorded, settings = load_recorded(run_dir)
    stages = stages_to_verify(recorded, stop_after)
    out = Path(output_dir) if output_dir else fresh_output_dir()
    # Only where files go changes; run_training records the rest exactly as recorded.
    rerun_settings = settings.model_copy(update={"output_dir": out})
    stop: Any = None if stages[-1] == STAGES[-1] else stages[-1]
    # A cache hit would replay the recorded bytes, not reproduce them: recompute every stage.
    rerun = run_training(rerun_settings, stop_after=stop, use_cache=False)
    result = compare_manifests(
        recorded, rerun, labels=("recorded", "new"), stages=stages, title="verify"
    )
    create_markdown_artifact(
        key="verify-report",
        markdown=result.render(markdown=True),
        description=f"verify {recorded.run_id}: {result.headline()}",
    )
    summary = {
        **result.to_dict(),
        "rerun_dir": rerun["run_dir"],
        "report": f"{result.render()}\nrerun directory: {rerun['run_dir']}",
    }
    if not result.matches:
        return Failed(message=result.headline(), data=summary)
    return summary


def build_parser() -> _RaisingParser:
    parser = _RaisingParser(
        prog="python -m flows.verify",
        description="Rerun a seedtrail run from its manifest and compare every stage's "
        "fingerprint. Exit 0: every stage matches; 1: a stage differs; 2: bad input.",
    )
    parser.add_argument("run_dir", type=Path, help="Run directory (holds manifest.json).")
    parser.add_argument(
        "--stop-after",
        "--stages",
        dest="stop_after",
        choices=STAGES,
        metavar="STAGE",
        help=f"Verify only the stages up to STAGE ({', '.join(STAGES)}); "
        "e.g. 'split' checks data and split without training.",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="Folder for the rerun (default: a new temporary directory).",
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    # Check everything cheap before Prefect starts: bad input is one line, no traceback.
    recorded, settings = load_recorded(args.run_dir)
    stages_to_verify(recorded, args.stop_after)
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
        tf_runtime.prefetch(settings.determinism)
    state = verify_flow(args.run_dir, args.stop_after or STAGES[-1], str(out), return_state=True)
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
