"""Fuzzing load + validate with mutated example pipelines (hypothesis, derandomized).

Each case is an example file of ``resources/workspace`` with a few mutations: byte flips,
line deletions and duplications, indentation changes, type swaps, alias and merge-key
insertions, huge numbers, unicode. Whatever the text, loading must end in a ``Definition``
or a ``ConfigError`` whose every diagnostic has a line and a column: never another
exception, and never a hang (a case using more than 2 s of CPU is a found hang).
"""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config.loader import load_text
from engine.errors import ConfigError

try:
    from tests.engine.test_config_support import REGISTRY
except ImportError:
    from test_config_support import REGISTRY  # type: ignore[no-redef]

WORKSPACE = Path(__file__).resolve().parents[2] / "resources" / "workspace"
EXAMPLES = [path.read_text(encoding="utf-8") for path in sorted(WORKSPACE.glob("*.yaml"))]
CPU_LIMIT = 2.0  # seconds of CPU for one load: generous on a loaded machine

INSERTS = [
    "x: &a {p: 1, q: [1, 2]}",
    "<<: *a",
    "  <<: *a",
    "y: *a",
    "z: {<<: [*a, *a]}",
    "big: 123456789012345678901234567890123456789",
    "f: 1e999",
    "n: -.inf",
    "t: !!binary aGk=",
    "u: !Ref thing",
    "emoji: \U0001f600\u202e\u0301",
    's: "\\ud800"',
    "? [1, 2]\n: x",
    "k: &k kk",
    "*k : 1",
    "---",
    "...",
    "d: [[[[[[[[[[]]]]]]]]]]",
    "- item",
    "%YAML 1.2",
    "tab:\tx",
    "  - {name: x, type: step.set, config: {values: *a}}",
    "q: '{{ .a | }}'",
    "if: '.a ==='",
    "l: &l [*l]",
]
TYPE_SWAPS = [
    ("{", "["),
    (": ", ": ["),
    ("true", "{}"),
    ("step.set", "step.nope"),
    ("name:", "name: [x]\n  n:"),
    ("30s", "-1s"),
    ("201", "99999999999999999999"),
    ('"', "'"),
    ("config:", "config: 12 #"),
    ("steps:", "steps: {}\n  s:"),
]


def _chained_merges(levels: int, width: int) -> str:
    """``<<`` of aliases of ``<<`` of aliases...: width**levels pairs for a naive merger."""
    lines = ["m0: &m0 {k: v}"]
    for i in range(1, levels + 1):
        lines.append(f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * width)}]}}")
    return "\n".join(lines)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(EXAMPLES))
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        at = draw(st.integers(0, max(len(lines) - 1, 0)))
        kind = draw(st.integers(0, 9))
        if kind == 0 and text:  # a byte flip (kept valid UTF-8: one character replaced)
            i = draw(st.integers(0, len(text) - 1))
            text = text[:i] + chr(draw(st.integers(1, 0x2FFFF))) + text[i + 1 :]
            continue
        if kind == 1 and len(lines) > 1:
            del lines[at]
        elif kind == 2:
            lines.insert(at, lines[draw(st.integers(0, len(lines) - 1))])
        elif kind == 3:
            lines[at] = " " * draw(st.integers(1, 6)) + lines[at]
        elif kind == 4:
            lines[at] = lines[at].lstrip()
        elif kind == 5:
            old, new = draw(st.sampled_from(TYPE_SWAPS))
            lines[at] = lines[at].replace(old, new, 1)
        elif kind == 6:
            lines.insert(at, " " * draw(st.sampled_from([0, 2, 4, 6])) + draw(st.sampled_from(INSERTS)))
        elif kind == 7:
            lines[at] = lines[at] + draw(st.text(max_size=8))
        elif kind == 8:
            lines.insert(0, _chained_merges(draw(st.integers(2, 9)), draw(st.integers(2, 9))))
        else:
            number = draw(st.sampled_from(["9" * 5000, "1e308", "0x" + "f" * 400, "-0", ".nan"]))
            lines[at] = lines[at].replace(":", f": {number} #", 1)
        text = "\n".join(lines)
    return text


def check(text: str) -> None:
    start = time.process_time()
    try:
        definition = load_text(text, "fuzz.yaml", registry=REGISTRY, env={})
    except ConfigError as exc:
        found = exc.diagnostics
        assert found
    else:
        found = definition.warnings
    spent = time.process_time() - start
    assert spent < CPU_LIMIT, f"a load used {spent:.1f} s of CPU: a hang"
    for d in found:
        assert d.file and isinstance(d.line, int) and isinstance(d.col, int), d
        assert d.line >= 1 and d.col >= 1 and d.message, d


@settings(
    max_examples=2000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_mutated_pipelines_load_or_fail_with_positions(text: str) -> None:
    check(text)


def test_the_examples_themselves_load() -> None:
    for text in EXAMPLES:
        check(text)
