"""Benchmarks of issue 6 (`make bench`); see benchmarks/run.py and docs/performance.md."""
