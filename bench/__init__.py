"""Benchmarks and soak runs: each prints its numbers; none asserts on speed."""
