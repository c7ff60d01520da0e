"""The garbage collector of a server process, set for serving.

A triggered run allocates thousands of containers (a parsed 100 KB webhook alone is about
7,000), so with CPython's defaults (a young collection every 700 allocations, a full one
every 100 young ones) the collector runs several times a request, and each full collection
walks every object the process holds, the ~150,000 of the imported framework included.
Measured under bench_server's load (8 connections, SQLite, 100 KB bodies, turns in the same
session): 81-96 requests/s, p95 113-136 ms with these settings; 54-61/s, p95 178-273 ms with
the freeze alone and CPython's thresholds.

``settle()`` is called once the app is built and before the first request: what exists
then (modules, the app, the loaded pipelines) lives as long as the process, so it is moved
out of the collector's sight (``gc.freeze``), and young collections run every
``YOUNG`` allocations. Reference counting still frees what it always did at once; only
cycles wait a little longer.
"""

from __future__ import annotations

import gc

YOUNG = 10_000  # allocations between young collections (CPython's default: 700)
OLDER = 20  # young collections per middle one, and middle ones per full one (default: 10)


def settle() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, OLDER, OLDER)
