"""``wfstudio run`` (one pipeline, one payload) and ``wfstudio demo`` (the example workspace)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from engine.cli.common import UsageError, dump, print_outcome, store_url
from engine.cli.inputs import parse_json, read_text
from engine.cli.parser import STORE_HELP

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "resources" / "workspace"


def _read_input(args: argparse.Namespace) -> Any:
    if args.input is not None and args.input_file is not None:
        raise UsageError("give either --input or --input-file, not both")
    if args.input_file is not None:
        return parse_json(read_text(args.input_file, "--input-file"), "--input-file", "object")
    if args.input is not None:
        return parse_json(args.input, "--input", "object")
    return {}


async def _run(args: argparse.Namespace) -> int:
    from engine.api import Engine

    payload = _read_input(args)
    store: str | None = None if args.no_record else (store_url(args) or "default")
    async with Engine.open(Path(args.file), store=store) as engine:
        pipeline = args.pipeline
        if pipeline is None:
            names = list(engine.pipelines)
            if len(names) != 1:
                raise UsageError(f"{args.file} has {len(names)} pipelines ({', '.join(names)}): "
                                 "choose one with -p")
            pipeline = names[0]
        execution = await engine.run(pipeline, payload)
    if args.json:
        print(dump(execution.to_dict()))
    else:
        print_outcome(execution.pipeline, execution.id, execution.status, execution.duration_ms,
                      execution.error, execution.output)
    return 0 if execution.ok else 1


def cmd_run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _demo(args: argparse.Namespace) -> int:
    """Run every sample of the example workspace (resources/workspace/samples.json)."""
    from platformdirs import user_data_dir

    from engine.sample_api import SampleApi

    folder = Path(args.folder)
    samples_file = folder / "samples.json"
    try:
        samples = json.loads(samples_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read {samples_file}: {exc}") from None
    data_dir = Path(user_data_dir("wfstudio")) / "demo"
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DATA_DIR", str(data_dir))
    store = store_url(args) or "default"
    failures = 0
    with SampleApi() as api:
        os.environ["SAMPLE_API_URL"] = api.url
        for sample in samples:
            failures += not await _demo_sample(folder, sample, store)
    print(f"\n{len(samples) - failures}/{len(samples)} samples as expected; "
          "inspect them with `wfstudio executions list`")
    return 1 if failures else 0


async def _demo_sample(folder: Path, sample: dict[str, Any], store: str) -> bool:
    from engine.api import Engine

    async with Engine.open(folder / sample["file"], store=store) as engine:
        started = time.perf_counter()
        execution = await engine.run(sample["pipeline"], sample.get("input", {}))
        elapsed = (time.perf_counter() - started) * 1000
    expected = sample.get("expect", "completed")
    mark = "ok " if execution.status == expected else "BAD"
    where = f"{sample['file']}:{sample['pipeline']}"
    print(f"{mark} {where:<30} {execution.status:<12} "
          f"{elapsed:7.1f}ms  {sample.get('title', '')}")
    shown = execution.response["body"] if execution.response else execution.output
    if execution.error:
        shown = {"error": execution.error.get("message"), "step": execution.error.get("step")}
    text = json.dumps(shown, default=str)
    print(f"      {text[:150]}{'…' if len(text) > 150 else ''}")
    return execution.status == expected


def cmd_demo(args: argparse.Namespace) -> int:
    return asyncio.run(_demo(args))


def add_commands(sub: Any) -> None:
    """Add ``run`` and ``demo``."""
    p = sub.add_parser("run", help="run a pipeline and print its result",
                       description="Run a pipeline once with a JSON object as its trigger "
                       "payload; exit 1 if the execution fails. Runs the engine directly: "
                       "mocks and breakpoints do not apply.")
    p.add_argument("file", metavar="FILE", help="the pipeline file")
    p.add_argument("-p", "--pipeline", help="which pipeline (needed when FILE has several)")
    p.add_argument("--input", metavar="JSON", help="trigger payload, a JSON object")
    p.add_argument("--input-file", metavar="FILE", help="file holding the trigger payload as JSON")
    p.add_argument("--json", action="store_true", help="print {execution_id, status, output, error}")
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("--no-record", action="store_true", help="record nothing")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("demo", help="run the example workspace's samples headless",
                       description="Run every sample of a workspace's samples.json and check "
                       "each ends as expected; exit 1 otherwise.")
    p.add_argument("folder", nargs="?", default=str(EXAMPLES), metavar="FOLDER",
                   help="a workspace with samples.json (default: the example workspace)")
    p.add_argument("--store", help=STORE_HELP)
    p.set_defaults(func=cmd_demo)
