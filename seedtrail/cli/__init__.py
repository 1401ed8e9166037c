"""Command lines of the flows: flag parsing and the exit-status contract."""
