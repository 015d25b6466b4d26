"""Fuzzing of what a sender controls: the message envelope, the command, its signature.

A short run is part of the test suite; ``python -m tests.fuzz --long`` runs many more
inputs, and ``python -m tests.fuzz --atheris`` runs the coverage-guided harness.
"""
