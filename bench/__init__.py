"""Benchmarks: `make bench` (python -m bench) prints one table and writes build/bench.json.

Every row is a wall time measured in this process next to a baseline measured
in the same run, so the ratio, not the absolute time, is the figure to compare
across machines.
"""
