"""Prefect flows; each runnable as `python -m flows.<name>`."""
