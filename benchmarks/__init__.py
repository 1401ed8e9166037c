"""Benchmarks: the cost of reproducibility and orchestration, as ratios against plain Keras."""
