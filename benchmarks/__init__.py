"""Benchmarks for permit-worker: registry build, roster import, daily scan, dispatch.

Run with `make bench` (or `.venv/bin/python -m benchmarks.run --help`); see benchmarks/README.md.
Not part of the test suite: they take minutes and need a quiet machine to mean anything.
"""
