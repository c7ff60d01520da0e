"""Validation of big pipeline files: load + validate (what ``/definitions/validate`` does).

    python benchmarks/bench_validate.py [--steps 2000 20000] [--repeat 5]

For each size, a generated file (every kind of step: templates, jq conditions, routes,
retries, JSON Schemas, loops with sub-steps) is validated with ``load_text``; the same-run
baseline is PyYAML's C ``safe_load`` of the same text, which only parses. Figures are the
median of ``--repeat`` runs, wall time and CPU time (the CPU figure is steadier on a shared
machine). Also: the merge-key bomb of issue 10 and a "billion laughs", each refused.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from engine.config.loader import load_text
from engine.errors import ConfigError
from engine.steps.base import default_registry


def generate(steps: int) -> str:
    """A pipeline of about ``steps`` steps (sub-steps included)."""
    lines = [
        "name: generated",
        'version: "1.0"',
        "pipelines:",
        "  big:",
        "    trigger: {type: http, config: {method: POST, path: /big}}",
        "    steps:",
    ]
    count = i = 0
    while count < steps:
        name = f"s{i}"
        kind = i % 10
        lines.append(f"      - name: {name}")
        if kind == 0:
            lines += [
                "        type: step.set",
                "        config:",
                "          values:",
                f'            total: "{{{{ .qty * {i} }}}}"',
                f"            label: item-{i}",
            ]
        elif kind == 1:
            lines += [
                "        type: step.log",
                '        if: ".qty > 1"',
                '        config: {message: "at {{ .total }}", level: info}',
            ]
        elif kind == 2:
            lines += [
                "        type: step.conditional",
                "        config:",
                '          field: "{{ .kind }}"',
                f"          routes: {{a: s{i + 1}, b: s{i + 2}}}",
                f"          default: s{i + 3}",
            ]
        elif kind == 3:
            lines += [
                "        type: step.http_call",
                '        config: {url: "https://example.com/{{ .id }}", method: POST}',
                "        retry: {max_attempts: 3, initial_delay: 100ms}",
                "        timeout: 5s",
            ]
        elif kind == 4:
            lines += [
                "        type: step.validate",
                "        config:",
                "          strategy: json_schema",
                "          schema:",
                "            type: object",
                "            required: [sku]",
                "            properties: {sku: {type: string}}",
            ]
        elif kind == 5:
            lines += [
                "        type: step.foreach",
                "        config:",
                '          collection: "{{ .items }}"',
                "          steps:",
                f"            - {{name: {name}-a, type: step.set, config: {{values: {{k: 1}}}}}}",
                f'            - {{name: {name}-b, type: step.log, config: {{message: "{{{{ .item }}}}"}}}}',
            ]
            count += 2
        else:
            lines += [
                "        type: step.set",
                f'        config: {{values: {{n: {i}, text: "{{{{ .a }}}}-{i}"}}}}',
            ]
        count += 1
        i += 1
    return "\n".join(lines) + "\n"


def merge_bomb(levels: int = 10, width: int = 9) -> str:
    lines = ["a0: &a0 {k0: v}"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} {{<<: *a{i - 1}, k{i}: [{', '.join([f'*a{i - 1}'] * width)}]}}")
    return "\n".join(lines) + "\n"


def laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["l0: &l0 [lol]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def measure(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median (wall ms, CPU ms) over ``repeat`` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def validate(text: str, registry: object) -> None:
    with contextlib.suppress(ConfigError):
        load_text(text, "bench.yaml", registry=registry, env={})  # type: ignore[arg-type]


def run(sizes: list[int], repeat: int) -> dict[str, tuple[float, float]]:
    registry = default_registry()
    validate(generate(50), registry)  # warm: step types, schemas, jq
    figures: dict[str, tuple[float, float]] = {}
    for steps in sizes:
        text = generate(steps)
        times = repeat if steps <= 5000 else max(1, repeat // 2)
        base = measure(lambda t=text: yaml.load(t, Loader=yaml.CSafeLoader), times)
        mine = measure(lambda t=text: validate(t, registry), times)
        figures[f"safe_load {steps}"], figures[f"validate {steps}"] = base, mine
        print(
            f"{steps:>6,} steps ({len(text) / 1e6:.2f} MB): validate {mine[0]:8.1f} ms wall / "
            f"{mine[1]:8.1f} ms CPU   baseline yaml.safe_load (C) {base[0]:8.1f} ms wall / "
            f"{base[1]:8.1f} ms CPU"
        )
    for name, text in (("merge-key bomb", merge_bomb()), ("billion laughs", laughs())):
        wall, cpu = figures[name] = measure(lambda t=text: validate(t, registry), 1)
        print(f"{name} ({len(text)} bytes): answered in {wall:.1f} ms wall / {cpu:.1f} ms CPU")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("validation of generated pipeline files (load + validate, as /definitions/validate)")
    run(args.steps, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
