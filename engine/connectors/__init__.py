"""Connectors: sources that start executions from outside events, sinks that send events out."""
