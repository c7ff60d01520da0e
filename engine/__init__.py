"""Workflow Studio's headless engine: config, expressions, executor, steps, event store, CLI."""

__version__ = "0.1.0"

__all__ = ["__version__"]
