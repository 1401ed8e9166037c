"""Prefect flows; each runnable as `python -m flows.<name>`."""

from seedtrail.prefect.environment import environment_defaults

# Before any flow module imports Prefect, which reads its settings once, at import:
# telemetry off (see seedtrail/prefect/environment.py).
environment_defaults()
