"""seedtrail's Prefect plumbing: the temporary server, the sweep's runner, flow parameters,
run names, log filters, signals and the project's deployments.

Importing this package imports nothing (`python -m seedtrail.prefect.watchdog` and
`environment_defaults`, which must run before Prefect is imported, rely on it); import
the modules themselves. The Prefect internals still relied on live in `workarounds`.
"""

__all__ = [
    "deployments",
    "environment",
    "logs",
    "names",
    "parameters",
    "runner",
    "server",
    "signals",
    "watchdog",
    "workarounds",
    "worker",
]
