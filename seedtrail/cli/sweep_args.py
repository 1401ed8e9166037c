"""What `python -m flows.sweep` accepts: seeds, sources to vary, workers, and the training flags.

Light on purpose (no Prefect): the command checks its flags with it before importing
the flow, so a mistyped flag is answered at once (seedtrail/cli/main.py: check_early).
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from seedtrail.core.errors import InputError
from seedtrail.sweep.plan import VARY_CHOICES, default_sweep_dir, parse_vary, seed_list
from settings.cli import load_settings
from settings.model import RunSettings

PROG = "python -m flows.sweep"
DESCRIPTION = "Run the training flow once per seed and summarise the spread of the metrics."


class _Parser(argparse.ArgumentParser):
    flags: list[str]

    def error(self, message: str) -> NoReturn:
        raise InputError(message)


def sweep_parser() -> _Parser:
    p = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        add_help=False,
        allow_abbrev=False,  # `--seed` is a settings flag, not short for `--seeds`
        epilog="Every other flag is a training setting, as for python -m flows.train (below).",
    )
    p.flags = []
    g = p.add_argument_group("sweep")

    def add(*names: str, **kwargs: Any) -> None:  # our own list of flags, for suggestions
        p.flags += g.add_argument(*names, **kwargs).option_strings

    add("--seeds", help="Seeds to run: 0,1,2 or ranges like 0-7.")
    add("--n-seeds", type=int, help="Run N seeds from --base-seed on (default 4).")
    add("--base-seed", type=int, default=0, help="First seed of --n-seeds (default 0).")
    add(
        "--vary",
        default="all",
        help=f"Sources of randomness to vary, comma-separated: {', '.join(VARY_CHOICES)} "
        "(default all = the root seed). One stage varies only that stage's seed and keeps "
        "every other stage at the base settings' seeds.",
    )
    add("--workers", type=int, default=1, help="Runs at once, each in its own process (default 1).")
    add(
        "--dask-address",
        help="Run on an existing Dask cluster (tcp://HOST:PORT) instead of local processes.",
    )
    add(
        "--sweep-dir",
        type=Path,
        help="Sweep directory (default <output-dir>/sweep-<vary>-<hash of the settings>).",
    )
    return p


@dataclass(frozen=True)
class SweepArgs:
    base: RunSettings
    seeds: list[int]
    vary: list[str]
    workers: int
    dask_address: str | None
    sweep_dir: Path


def _check_dask_address(address: str) -> None:
    """One line instead of a 30 s connect timeout deep inside distributed."""
    parts = urlsplit(address)
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or parts.port is None:
        raise InputError(f"--dask-address: expected tcp://HOST:PORT (got {address!r})")
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=5):
            pass
    except OSError as err:
        raise InputError(
            f"--dask-address: cannot reach the Dask scheduler at {address} ({err.strerror or err})"
        ) from None


def parse_sweep_args(argv: Sequence[str]) -> SweepArgs:
    """The command line of `flows.sweep`, checked; InputError names every problem."""
    parser = sweep_parser()
    argv = list(argv)
    if "-h" in argv or "--help" in argv:
        parser.print_help()
        print()
        load_settings(["--help"], prog=PROG, description=DESCRIPTION)  # prints, exits 0
        sys.exit(0)
    ns, rest = parser.parse_known_args(argv)
    sweep_flags = [f for f in parser.flags if f.startswith("--")]
    base = load_settings(rest, prog=PROG, description=DESCRIPTION, other_flags=sweep_flags)
    problems: list[str] = []
    if not 1 <= ns.workers <= 256:
        problems.append(f"--workers: must be between 1 and 256 (got {ns.workers})")
    try:
        seeds = seed_list(ns.seeds, ns.n_seeds, ns.base_seed)
    except InputError as err:
        problems += err.problems
        seeds = []
    try:
        vary = parse_vary(ns.vary)
    except InputError as err:
        problems += err.problems
        vary = []
    if problems:
        raise InputError(problems)
    if ns.dask_address is not None:
        _check_dask_address(ns.dask_address)
    sweep_dir = ns.sweep_dir or default_sweep_dir(base, vary)
    return SweepArgs(base, seeds, vary, ns.workers, ns.dask_address, sweep_dir)
