"""What `python -m flows.verify` and `python -m flows.compare` accept: finished runs to check.

Light on purpose (no Prefect): each command checks its arguments, and reads the
recorded manifests, before importing its flow, so bad input is answered at once
(seedtrail/cli/main.py: check_early).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from seedtrail.compare.diff import read_run
from seedtrail.compare.drift import parse_tolerance
from seedtrail.core.errors import InputError
from seedtrail.run.manifest import Manifest
from seedtrail.sweep.against import seed_noise
from settings.cli import RaisingParser
from settings.model import RunSettings
from settings.seeds import STAGES


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


def add_divergence_flags(parser: RaisingParser) -> None:
    """--tolerance and --against-sweep: how much a difference in bytes matters."""
    parser.add_argument(
        "--tolerance",
        default="",
        metavar="METRIC=BOUND,...",
        help="Count a run whose bytes differ as reproducing when each named test metric "
        "differs by at most BOUND, e.g. accuracy=0.01,loss=0.02 (for a GPU, another CPU "
        "under the native ISA, another TensorFlow version: docs/divergence.md). "
        "Default: bit-exact.",
    )
    parser.add_argument(
        "--against-sweep",
        type=Path,
        metavar="DIR",
        help="A finished sweep of the same settings (seed aside): metric differences are "
        "also given in units of its seed-to-seed standard deviation.",
    )


def divergence_options(
    tolerance: str, against_sweep: Path | str | None, reference: Manifest
) -> dict[str, Any]:
    """compare_manifests' keywords for the two flags; InputError naming the flag if bad."""
    out: dict[str, Any] = {"tolerance": parse_tolerance(tolerance) if tolerance else {}}
    if against_sweep:
        noise = seed_noise(Path(against_sweep), reference)
        out.update(seed_std=noise.std, seed_std_source=noise.source)
    return out


def check_divergence_flags(args: argparse.Namespace, reference: Manifest) -> None:
    """Both flags are read now, before Prefect starts: bad input is one line."""
    divergence_options(args.tolerance, args.against_sweep, reference)


def verify_parser() -> RaisingParser:
    parser = RaisingParser(
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
    add_divergence_flags(parser)
    return parser


def parse_verify_args(argv: list[str]) -> tuple[argparse.Namespace, RunSettings]:
    """`flows.verify`'s arguments and the recorded run's settings; InputError if bad."""
    args = verify_parser().parse_args(argv)
    recorded, settings = load_recorded(args.run_dir)
    stages_to_verify(recorded, args.stop_after)  # something to verify up to --stop-after
    check_divergence_flags(args, recorded)
    return args, settings


def compare_parser() -> RaisingParser:
    parser = RaisingParser(
        prog="python -m flows.compare",
        description="Compare two finished seedtrail runs from their manifests, without "
        "rerunning. Exit 0: every stage matches; 1: a stage differs; 2: bad input.",
    )
    parser.add_argument("run_a", type=Path, help="First run directory (A, the reference).")
    parser.add_argument("run_b", type=Path, help="Second run directory (B).")
    add_divergence_flags(parser)
    return parser


def parse_compare_args(argv: list[str]) -> argparse.Namespace:
    """`flows.compare`'s two run directories, both manifests read and valid; InputError if not."""
    args = compare_parser().parse_args(argv)
    reference = read_run(args.run_a)
    read_run(args.run_b)
    check_divergence_flags(args, reference)
    return args
