"""Prefect flows; each runnable as `python -m flows.<name>`."""

from seedtrail.prefect_compat import environment_defaults

# Before any flow module imports Prefect, which reads its settings once, at import:
# telemetry off (see prefect_compat).
environment_defaults()
