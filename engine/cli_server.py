"""The old home of ``wfstudio serve`` and ``keys``: now ``engine.cli.serve`` and
``engine.cli.keys``. Kept only for callers of ``engine.cli_server.main``; use
``engine.cli.main``.
"""

from engine.cli import main

__all__ = ["main"]
