"""Usage-value analysis: SQL pushdown to per-account rows, then pure statistics.

This package never imports ``bot``, Slack or Jinja: it takes a database connection or
DataFrames and returns frozen dataclasses.
"""
