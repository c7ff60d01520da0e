"""Replaying an execution and comparing two executions."""
