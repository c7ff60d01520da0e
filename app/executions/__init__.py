"""Executions: the list, the timeline, the inspector and the raw event list."""
