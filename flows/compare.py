"""`python -m flows.compare RUN_A RUN_B`: explain how two finished runs differ, without rerunning.

Lists settings that differ (dotted keys, both values; output_dir ignored),
seeds, environment and stage code versions that differ, the first divergent
stage (and training epoch), and metric deltas. Exit 0 when every stage
fingerprint matches, 1 when one differs or a run is incomplete, 2 on bad input.
As a Prefect flow (`compare`), a difference ends the flow run Failed; the
report is the markdown artifact `compare-report`.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # before the imports below (Prefect takes seconds): see check_early
    from seedtrail.cli.check_args import parse_compare_args
    from seedtrail.cli.main import check_early

    check_early(parse_compare_args)

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.states import Failed, State

from seedtrail.cli.check_args import parse_compare_args
from seedtrail.cli.main import run_cli
from seedtrail.compare.diff import read_run
from seedtrail.compare.explanation import compare_manifests
from seedtrail.prefect.server import ensure_api


def _run_name() -> str:
    from prefect.runtime import flow_run

    p = flow_run.parameters
    return f"compare-{Path(str(p.get('run_a', 'a'))).name}-{Path(str(p.get('run_b', 'b'))).name}"


@flow(name="compare", flow_run_name=_run_name, validate_parameters=True)
def compare_flow(run_a: Path, run_b: Path) -> dict[str, Any] | State:
    """Compare run B against run A from their manifests."""
    result = compare_manifests(read_run(run_a), read_run(run_b), labels=("A", "B"))
    create_markdown_artifact(
        key="compare-report",
        markdown=result.render(markdown=True),
        description=f"compare {result.a.run_id} vs {result.b.run_id}: {result.headline()}",
    )
    summary = {**result.to_dict(), "report": result.render()}
    if not result.matches:
        return Failed(message=result.headline(), data=summary)
    return summary


def main(argv: list[str]) -> int:
    args = parse_compare_args(argv)  # both read before Prefect starts: bad input is one line
    ensure_api()
    state = compare_flow(args.run_a, args.run_b, return_state=True)
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, BaseException):
        raise summary
    print(f"\n{summary['report']}")
    return int(summary["exit_code"])


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
