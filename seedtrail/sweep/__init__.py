"""Sweeps: many seeds of one configuration: the plan and its statistics (plan), the runs
(launch), resuming (resume) and the summary (report).

Public names import lazily (PEP 562): importing the package costs nothing until one is used,
so a command can check its flags before TensorFlow or Prefect load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seedtrail.core.lazy import lazy_exports

if TYPE_CHECKING:
    from seedtrail.sweep.launch import record_finished, task_runner, train_seed
    from seedtrail.sweep.plan import (
        VARY_CHOICES,
        ci_warnings,
        default_sweep_dir,
        parse_vary,
        plan_runs,
        seed_list,
    )
    from seedtrail.sweep.report import publish_artifacts, write_summary
    from seedtrail.sweep.resume import completed_runs, run_record

__all__ = [
    "VARY_CHOICES",
    "ci_warnings",
    "completed_runs",
    "default_sweep_dir",
    "parse_vary",
    "plan_runs",
    "publish_artifacts",
    "record_finished",
    "run_record",
    "seed_list",
    "task_runner",
    "train_seed",
    "write_summary",
]

_EXPORTS = {
    "VARY_CHOICES": "plan",
    "ci_warnings": "plan",
    "completed_runs": "resume",
    "default_sweep_dir": "plan",
    "parse_vary": "plan",
    "plan_runs": "plan",
    "publish_artifacts": "report",
    "record_finished": "launch",
    "run_record": "resume",
    "seed_list": "plan",
    "task_runner": "launch",
    "train_seed": "launch",
    "write_summary": "report",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)
