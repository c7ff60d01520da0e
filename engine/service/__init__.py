"""The studio service: one async interface (protocol.py) with a local implementation (local.py)."""
