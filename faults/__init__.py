"""The fault-injection suite: `python -m faults` (see docs/operations.md)."""
