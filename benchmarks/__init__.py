"""Benchmarks: scripts that measure and print (run them with ``python -m benchmarks.NAME``)."""
