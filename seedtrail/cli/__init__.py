"""The flows' command lines: flag parsing (train_args, check_args, sweep_args) and the
exit-status contract (main: run_cli, check_early).

Public names import lazily (PEP 562): importing the package costs nothing until one is used,
so a command can check its flags before TensorFlow or Prefect load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seedtrail.core.lazy import lazy_exports

if TYPE_CHECKING:
    from seedtrail.cli.check_args import (
        load_recorded,
        parse_compare_args,
        parse_verify_args,
        stages_to_verify,
    )
    from seedtrail.cli.main import EXIT_FAILED, EXIT_OK, check_early, run_cli
    from seedtrail.cli.sweep_args import parse_sweep_args
    from seedtrail.cli.train_args import parse_train_args

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "check_early",
    "load_recorded",
    "parse_compare_args",
    "parse_sweep_args",
    "parse_train_args",
    "parse_verify_args",
    "run_cli",
    "stages_to_verify",
]

_EXPORTS = {
    "EXIT_FAILED": "main",
    "EXIT_OK": "main",
    "check_early": "main",
    "load_recorded": "check_args",
    "parse_compare_args": "check_args",
    "parse_sweep_args": "sweep_args",
    "parse_train_args": "train_args",
    "parse_verify_args": "check_args",
    "run_cli": "main",
    "stages_to_verify": "check_args",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)
