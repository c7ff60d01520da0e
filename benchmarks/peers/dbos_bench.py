"""DBOS Transact on SQLite: a 5-step workflow, run sequentially; prints its figures as JSON.

    benchmarks/peers/.dbos-venv/bin/python benchmarks/peers/dbos_bench.py --db PATH [--seconds S]
                                                                          [--payload-bytes N]

Runs in DBOS's own venv (benchmarks/peers/install.sh), not the project's. The workflow does
what the engine benchmark's 5-step pipelines do: each step reads the context and returns a
few values, which DBOS checkpoints (every step's output, the workflow's input and result) in
its SQLite system database before the workflow returns. With ``--payload-bytes`` the input
is the same webhook-like payload as the engine's (benchmarks/payloads.py) and the steps
mirror the engine's webhook pipeline. DBOS runs with its SQLite defaults (rollback journal,
synchronous=FULL: a disk flush per commit); ``--store-settings`` gives it the engine's store
settings instead (WAL, synchronous=NORMAL), for a like-for-like figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig
from payloads import webhook
from sqlalchemy import event as sa_event


@DBOS.step()
def step_a(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"x": ctx["n"]}


@DBOS.step()
def step_b(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"y": ctx["x"], "label": f"order {ctx['n']}"}


@DBOS.step()
def step_c(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"z": ctx["y"]}


@DBOS.step()
def step_d(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True}


@DBOS.step()
def step_e(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"x": ctx["x"], "z": ctx["z"]}


@DBOS.workflow()
def five(payload: dict[str, Any]) -> dict[str, Any]:
    ctx = dict(payload)
    for step in (step_a, step_b, step_c, step_d):
        ctx.update(step(ctx))
    return step_e(ctx)


@DBOS.step()
def read(ctx: dict[str, Any]) -> dict[str, Any]:
    order = ctx["data"]["order"]
    return {"order_id": order["id"], "email": order["customer"]["email"]}


@DBOS.step()
def label(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"label": f"order {ctx['order_id']} for {ctx['email']}"}


@DBOS.step()
def count(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"items": len(ctx["data"]["order"]["line_items"])}


@DBOS.step()
def quantity(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"qty": sum(i["quantity"] for i in ctx["data"]["order"]["line_items"])}


@DBOS.step()
def reply(ctx: dict[str, Any]) -> dict[str, Any]:
    return {k: ctx[k] for k in ("order_id", "label", "items", "qty")}


@DBOS.workflow()
def hook(payload: dict[str, Any]) -> dict[str, Any]:
    ctx = dict(payload)
    for step in (read, label, count, quantity):
        ctx.update(step(ctx))
    return reply(ctx)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--payload-bytes", type=int, default=0)
    parser.add_argument("--store-settings", action="store_true",
                        help="SQLite as the engine's store sets it: WAL, synchronous=NORMAL "
                             "(DBOS leaves the defaults: rollback journal, synchronous=FULL)")
    args = parser.parse_args()
    if args.store_settings:
        conn = sqlite3.connect(args.db)
        conn.execute("PRAGMA journal_mode=WAL")  # kept in the file: DBOS's connections inherit it
        conn.close()

        @sa_event.listens_for(sa.engine.Engine, "connect")
        def _normal(dbapi_conn: Any, _record: Any) -> None:  # every connection DBOS opens
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")
    config: DBOSConfig = {"name": "wfs-bench", "system_database_url": f"sqlite:///{args.db}",
                          "log_level": "WARNING"}
    DBOS(config=config)
    logging.getLogger("dbos").setLevel(logging.WARNING)
    DBOS.launch()
    try:
        if args.payload_bytes:
            pool = [webhook(args.payload_bytes, seed) for seed in range(16)]

            def run(i: int) -> Any:
                return hook({**pool[i % 16], "id": f"evt_run_{i:09d}"})
        else:
            def run(i: int) -> Any:
                return five({"n": i})

        for i in range(20):  # warm up
            run(i)
        done = 0
        started = time.perf_counter()
        deadline = started + args.seconds
        while time.perf_counter() < deadline:
            result = run(1000 + done)
            done += 1
        elapsed = time.perf_counter() - started
        size = sum(p.stat().st_size for p in args.db.parent.glob(args.db.name + "*"))
        print(json.dumps({"rate": done / elapsed, "runs": done + 20, "db_bytes": size,
                          "last": result}))
    finally:
        DBOS.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
