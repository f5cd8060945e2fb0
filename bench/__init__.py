"""Benchmarks and soak runs: each prints its numbers; none asserts on speed.

``python -m bench`` runs the real server beside an empty gRPC server, the stage costs and the
learner's scaling, and prints Markdown tables (see the README's Performance section);
``bench/soak.py`` is the sustained-load soak run.
"""
