"""Benchmarks: not tests (no pass/fail); each module says how to run it."""
