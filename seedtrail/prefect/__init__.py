"""Prefect plumbing: the temporary API server and its watchdog (server, watchdog), the
sweep's task runner (runner, worker), flow parameters <-> settings (parameters), run names
and tags (names), log filters (logs), signals (signals), Prefect's environment
(environment), the project's deployments (deployments), and the few Prefect internals
still relied on (workarounds).

Public names import lazily (PEP 562): importing the package costs nothing until one is
used, so `environment_defaults` runs before Prefect is imported and
`python -m seedtrail.prefect.watchdog` starts in milliseconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seedtrail.core.lazy import lazy_exports

if TYPE_CHECKING:
    from seedtrail.prefect.deployments import (
        DEPLOYMENTS,
        NAME,
        TAGS,
        TRAIN_ENTRYPOINT,
        full_description,
        load_flow,
        sweep_parameters,
    )
    from seedtrail.prefect.environment import TELEMETRY_OFF, environment_defaults
    from seedtrail.prefect.logs import (
        clean_failure,
        drop_input_error_lines,
        drop_task_completed_lines,
        quiet_input_error_tracebacks,
    )
    from seedtrail.prefect.names import keep_typed_name, seed_tag, tag_current_flow_run
    from seedtrail.prefect.parameters import (
        setting_annotation,
        settings_from_parameters,
        settings_parameters,
        with_settings_docstring,
    )
    from seedtrail.prefect.runner import (
        ProcessTaskRunner,
        as_completed,
        ignore_sigint_in_worker,
        stop_local_workers,
    )
    from seedtrail.prefect.server import ServerDidNotStart, ensure_api, stop_servers
    from seedtrail.prefect.signals import (
        exit_now,
        exit_quietly_on_interrupt,
        interrupt_exit_code,
        interrupt_signal,
        interruption_types,
        restore_interrupts,
    )

__all__ = [
    "DEPLOYMENTS",
    "NAME",
    "TAGS",
    "TELEMETRY_OFF",
    "TRAIN_ENTRYPOINT",
    "ProcessTaskRunner",
    "ServerDidNotStart",
    "as_completed",
    "clean_failure",
    "drop_input_error_lines",
    "drop_task_completed_lines",
    "ensure_api",
    "environment_defaults",
    "exit_now",
    "exit_quietly_on_interrupt",
    "full_description",
    "ignore_sigint_in_worker",
    "interrupt_exit_code",
    "interrupt_signal",
    "interruption_types",
    "keep_typed_name",
    "load_flow",
    "quiet_input_error_tracebacks",
    "restore_interrupts",
    "seed_tag",
    "setting_annotation",
    "settings_from_parameters",
    "settings_parameters",
    "stop_local_workers",
    "stop_servers",
    "sweep_parameters",
    "tag_current_flow_run",
    "with_settings_docstring",
]

_EXPORTS = {
    "DEPLOYMENTS": "deployments",
    "NAME": "deployments",
    "TAGS": "deployments",
    "TRAIN_ENTRYPOINT": "deployments",
    "full_description": "deployments",
    "load_flow": "deployments",
    "sweep_parameters": "deployments",
    "TELEMETRY_OFF": "environment",
    "environment_defaults": "environment",
    "clean_failure": "logs",
    "drop_input_error_lines": "logs",
    "drop_task_completed_lines": "logs",
    "quiet_input_error_tracebacks": "logs",
    "keep_typed_name": "names",
    "seed_tag": "names",
    "tag_current_flow_run": "names",
    "setting_annotation": "parameters",
    "settings_from_parameters": "parameters",
    "settings_parameters": "parameters",
    "with_settings_docstring": "parameters",
    "ProcessTaskRunner": "runner",
    "as_completed": "runner",
    "ignore_sigint_in_worker": "runner",
    "stop_local_workers": "runner",
    "ServerDidNotStart": "server",
    "ensure_api": "server",
    "stop_servers": "server",
    "exit_now": "signals",
    "exit_quietly_on_interrupt": "signals",
    "interrupt_exit_code": "signals",
    "interrupt_signal": "signals",
    "interruption_types": "signals",
    "restore_interrupts": "signals",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)
