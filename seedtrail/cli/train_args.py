"""What `python -m flows.train` accepts: settings flags, or `--resume RUN_DIR`, and `--no-cache`.

Light on purpose (no Prefect, no TensorFlow): the command checks its flags with it
before importing the flow, so a mistyped flag is answered at once (seedtrail/cli/main.py).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from seedtrail.core.errors import InputError
from seedtrail.run.manifest import read_manifest
from seedtrail.run.rundir import check_not_locked, check_output_dir
from settings.cli import RaisingParser, load_settings
from settings.model import RunSettings

RUN_FLAGS = ("--resume", "--no-cache")

RUN_FLAGS_HELP = (
    "--resume RUN_DIR  continue an interrupted run in place (its settings, its directory). "
    "--no-cache  recompute every stage instead of reusing verified cached results."
)


@dataclass(frozen=True)
class TrainArgs:
    settings: RunSettings
    resume: Path | None  # an interrupted run directory to continue in place
    use_cache: bool


def _run_flags(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Flags that steer this invocation without changing what it computes."""
    parser = RaisingParser(add_help=False)  # one line on error, no abbreviations
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR")
    parser.add_argument("--no-cache", action="store_true")
    return parser.parse_known_args(argv)


def resumed_settings(run_dir: Path, rest: list[str]) -> RunSettings:
    """The settings an interrupted run recorded, or InputError saying why it cannot resume."""
    if rest:
        raise InputError(f"--resume takes the run's own settings; remove {' '.join(rest)}")
    if run_dir.is_file():
        raise InputError(
            f"--resume: {run_dir} is a file; give the run directory ({run_dir.parent})"
        )
    try:
        recorded = read_manifest(run_dir)
    except InputError as err:
        raise InputError([f"--resume: {p}" for p in err.problems]) from None
    if recorded.complete:
        raise InputError(f"--resume: {run_dir} is already complete; nothing to resume")
    try:  # at once, not after Prefect started: the run takes the lock itself when it reopens
        check_not_locked(run_dir)
    except InputError as err:
        raise InputError([f"--resume: {p}" for p in err.problems]) from None
    return recorded.settings


def check_train_args(argv: list[str]) -> None:
    """What `flows.train` checks before importing Prefect: its flags, and that the output
    folder (or the run to resume) takes a file, so `/proc` or a read-only mount is one
    line in a second, not an OSError once Prefect has started."""
    args = parse_train_args(argv)
    check_output_dir(args.resume if args.resume is not None else args.settings.output_dir)


def parse_train_args(argv: list[str]) -> TrainArgs:
    """The command line of `flows.train`, checked; InputError names every problem."""
    opts, rest = _run_flags(argv)
    if opts.resume is not None:
        settings = resumed_settings(opts.resume, rest)
    else:
        settings = load_settings(rest, epilog=RUN_FLAGS_HELP, other_flags=RUN_FLAGS)
    return TrainArgs(settings, opts.resume, not opts.no_cache)
