"""Benchmarks: the real server beside an empty gRPC server, stage costs, learner scaling.

``python -m bench`` runs them all and prints Markdown tables (see the README's Performance section).
"""
