"""One training run end to end: the pipeline, its run directory, manifest and report."""
