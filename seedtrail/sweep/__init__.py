"""Sweeps: many seeds of one configuration, their plan, runs, statistics and report."""
