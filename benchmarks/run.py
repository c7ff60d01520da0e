"""`make bench`: every benchmark, each figure next to a baseline measured in the same run."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ["bench_engine.py"],
    ["bench_validate.py"],
    ["bench_expressions.py"],
    ["bench_redaction.py"],
    ["bench_store.py", "--runs", "5000"],
    ["bench_live.py"],
    ["bench_service.py"],
    ["bench_server.py"],
    ["bench_studio.py"],
    ["bench_graph.py"],
    ["bench_timeline.py"],
    ["bench_executions.py"],
    ["bench_sources_cdc.py"],
    ["bench_sources_webhook.py"],
    ["bench_schedule.py"],
    ["bench_sources_redis.py"],
    ["bench_rabbitmq.py"],
    ["bench_sqs.py"],  # moto-bound: shows the source keeps up with the endpoint, not AWS speed
]


def main() -> int:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
               platform.processor())
    print(f"machine: {platform.node()} · {cpu} · {platform.python_implementation()} "
          f"{platform.python_version()} · {platform.system()} {platform.release()}\n")
    failed = 0
    for bench in BENCHES:
        done = subprocess.run([sys.executable, str(HERE / bench[0]), *bench[1:]])
        failed += done.returncode != 0
        print()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
