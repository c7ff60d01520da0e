"""Control-flow step types: conditional, branch, foreach, while, parallel and workflow_call.

Composite types never run their sub-steps themselves: they ask the executor
(``ctx.run_substeps``) so every sub-step keeps the full step semantics (retry, timeout,
on_error, mocks, breakpoints) and is recorded under this step's path.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from engine.errors import ExpressionError, StepError, WorkflowError
from engine.expressions import compile_value, truthy
from engine.format.templates import has_template
from engine.steps.base import StepContext, StepResult, StepType
from engine.steps.data import (
    RESERVED_KEYS,
    STEP_LIST_SCHEMA,
    config_schema,
    int_option,
    short,
    type_name,
)

# ---------------------------------------------------------------- helpers


def key_text(value: Any) -> str:
    """How a value compares with a YAML map key: 'true', 'null', '2' (2.0 too), or the string."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def _error_text(exc: BaseException) -> str:
    return exc.message if isinstance(exc, StepError) else str(exc) or type(exc).__name__


def _wrap_error(prefix: str, exc: BaseException, details: dict[str, Any]) -> StepError:
    """A StepError that says where it happened and keeps the cause's type and status."""
    if isinstance(exc, StepError):
        return StepError(f"{prefix}: {exc.message}", type=exc.type, status=exc.status,
                         details={**details, "error": exc.to_dict()})
    return StepError(f"{prefix}: {_error_text(exc)}", details=details)


def _selector_value(ctx: StepContext, config: Mapping[str, Any], key: str) -> Any:
    """``field``/``if``: a ``{{ }}`` template's value, or else a path/program into the context.

    The config arrives resolved; the raw config tells whether the value was a template.
    ``field: status`` and ``field: steps.check.status`` are paths, as in the Go dialect.
    """
    raw = ctx.step.config.get(key)
    if not isinstance(raw, str) or has_template(raw):
        return config.get(key)
    program = raw.strip()
    if not program.startswith("."):
        program = "." + program
    try:
        return ctx.evaluate(program)
    except ExpressionError as exc:
        raise StepError(f"{ctx.step.type}: cannot evaluate `{key}` {raw!r}: {exc}",
                        type="expression") from None


class _Failed(Exception):
    """One iteration/branch failed under fail_fast; carries which one and why."""

    def __init__(self, label: Any, cause: BaseException):
        super().__init__(str(cause))
        self.label = label
        self.cause = cause


async def _run_bounded(count: int, limit: int, run_one: Callable[[int], Awaitable[None]]) -> None:
    """Run ``run_one(0..count-1)``, at most ``limit`` at once (``limit <= 0``: one by one).

    A fixed pool of workers pulls indices, so in-flight work never exceeds ``limit`` and no
    task is created per item. The first exception cancels the rest and is re-raised as is.
    """
    if limit <= 0 or count <= 1:
        for index in range(count):
            await run_one(index)
        return
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            await run_one(index)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(limit, count)):
                group.create_task(worker())
    except BaseExceptionGroup as failures:
        raise _first_leaf(failures) from None


def _first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


# ---------------------------------------------------------------- step.conditional


async def run_conditional(ctx: StepContext, config: dict[str, Any]) -> StepResult:
    if "field" in config:
        value = _selector_value(ctx, config, "field")
        routes: Mapping[Any, Any] = config.get("routes") or {}
        wanted = key_text(value)
        target = next((step for key, step in routes.items() if key_text(key) == wanted), None)
        if target is None:
            target = config.get("default")
        if target is None:
            known = ", ".join(repr(key_text(k)) for k in routes) or "none"
            raise StepError(
                f"step.conditional: no route for value {short(value)} of field "
                f"{ctx.step.config.get('field')!r} and no `default`; known routes: {known}",
                type="no_route", details={"value": value, "routes": [key_text(k) for k in routes]})
    elif "if" in config:
        value = truthy(_selector_value(ctx, config, "if"))
        target = config.get("then") if value else config.get("else")
    else:
        raise StepError("step.conditional needs either `field` + `routes` or `if` + `then`",
                        type="config")
    return StepResult(output={"matched_value": value, "next_step": target}, jump=target,
                      matched_value=value)


# ---------------------------------------------------------------- step.branch


async def run_branch(ctx: StepContext, config: dict[str, Any]) -> StepResult:
    value = _selector_value(ctx, config, "field")
    branches: Mapping[Any, Any] = config.get("branches") or {}
    wanted = key_text(value)
    chosen = next((key for key in branches if key_text(key) == wanted), None)
    if chosen is not None:
        name = key_text(chosen)
        substep_key = next((k for k in (f"branches/{chosen}", f"branches/{name}")
                            if k in ctx.step.substeps), None)
    elif "default" in config:
        name = "default"
        substep_key = "default" if "default" in ctx.step.substeps else None
    else:
        known = ", ".join(repr(key_text(k)) for k in branches) or "none"
        raise StepError(
            f"step.branch: no branch for value {short(value)} of field "
            f"{ctx.step.config.get('field')!r} and no `default` (it may be an empty list); "
            f"known branches: {known}",
            type="no_route", details={"value": value, "branches": [key_text(k) for k in branches]})
    output = {"matched_value": value, "branch": name}
    if substep_key is not None and ctx.step.substeps.get(substep_key):
        sub = await ctx.run_substeps(substep_key, isolated=False)
        if sub.stopped:
            # A response/pipeline_output inside the branch ends the pipeline with its output.
            return StepResult(output=sub.last_output, stop=True, response=sub.response)
    merge = config.get("merge_step")
    return StepResult(output=output, jump=merge, matched_value=value if merge else None)


# ---------------------------------------------------------------- step.foreach


def _items(collection: Any) -> list[Any]:
    if isinstance(collection, list | tuple):
        return list(collection)
    if isinstance(collection, Mapping):
        return [{"key": k, "value": v} for k, v in collection.items()]
    raise StepError(f"step.foreach: `collection` must be an array (or an object, iterated as "
                    f"{{key, value}} entries), got {type_name(collection)} {short(collection)}",
                    type="config")


async def run_foreach(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    items = _items(config.get("collection"))
    item_var = config.get("item_var", "item")
    index_var = config.get("index_var", "index")
    collect = config.get("error_strategy", "fail_fast") == "collect_errors"
    results: list[Any] = [None] * len(items)
    errors: list[dict[str, Any]] = []

    async def one(index: int) -> None:
        try:
            sub = await ctx.run_substeps("steps", extra={item_var: items[index], index_var: index},
                                         iteration=index)
        except Exception as exc:
            if not collect:
                raise _Failed(index, exc) from exc
            errors.append({"index": index, "item": items[index], "error": _error_text(exc)})
            return
        results[index] = sub.last_output

    try:
        await _run_bounded(len(items), int_option(config, "concurrency", 0, 0), one)
    except _Failed as failed:
        index = failed.label
        raise _wrap_error(f"step.foreach: iteration {index} (item {short(items[index], 60)}) "
                          "failed", failed.cause, {"index": index}) from None
    output: dict[str, Any] = {"results": results, "count": len(items), "error_count": len(errors)}
    if collect:
        output["errors"] = sorted(errors, key=lambda e: e["index"])
    return output


# ---------------------------------------------------------------- step.while


def _condition(ctx: StepContext, raw: Any, extra: Mapping[str, Any]) -> bool:
    try:
        if isinstance(raw, str) and has_template(raw):
            return truthy(ctx.resolve(raw, extra))
        if isinstance(raw, str):
            return truthy(ctx.evaluate(raw, extra))
    except ExpressionError as exc:
        raise StepError(f"step.while: cannot evaluate condition {raw!r}: {exc}",
                        type="expression") from None
    return truthy(raw)


async def run_while(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    raw = config.get("condition")
    limit = int_option(config, "max_iterations", 1000, 1)
    carried: dict[str, Any] = {}  # every iteration's outputs merged, like `current`
    last_steps: dict[str, Any] = {}  # the previous iteration's outputs by step name
    last: Any = None
    iterations = 0
    while True:
        steps_view = {**ctx.vars.get("steps", {}), **last_steps}
        if not _condition(ctx, raw, {**carried, "steps": steps_view, "iteration": iterations}):
            break
        if iterations >= limit:
            raise StepError(f"step.while: condition {raw!r} is still true after {limit} "
                            "iterations (max_iterations); fix the condition or raise the limit",
                            type="max_iterations", details={"iterations": iterations})
        sub = await ctx.run_substeps("steps", extra={**carried, "iteration": iterations},
                                     iteration=iterations)
        iterations += 1
        last = sub.last_output
        last_steps = dict(sub.outputs)
        for output in sub.outputs.values():
            if isinstance(output, Mapping):
                carried.update((k, v) for k, v in output.items() if k not in RESERVED_KEYS)
        await asyncio.sleep(0)  # a body of instant steps still yields to cancellation
    return {"iterations": iterations, "last": last}


# ---------------------------------------------------------------- step.parallel


async def run_parallel(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    children = ctx.step.substeps.get("steps", [])
    names = [child.name for child in children]
    collect = config.get("error_strategy", "fail_fast") == "collect_errors"
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}

    async def one(index: int) -> None:
        name = names[index]
        try:
            sub = await ctx.run_substeps("steps", only=index)
        except Exception as exc:
            if not collect:
                raise _Failed(name, exc) from exc
            errors[name] = _error_text(exc)
            return
        results[name] = sub.outputs.get(name, sub.last_output)
        errors.update(sub.errors)  # children that failed under on_error: continue

    try:
        await _run_bounded(len(children), len(children), one)
    except _Failed as failed:
        raise _wrap_error(f"step.parallel: branch {failed.label!r} failed", failed.cause,
                          {"branch": failed.label}) from None
    return {"results": {n: results[n] for n in names if n in results},
            "errors": {n: errors[n] for n in names if n in errors}}


# ---------------------------------------------------------------- step.workflow_call


async def run_workflow_call(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    name = config["workflow"]
    mode = config.get("mode", "sync")
    try:
        summary = await ctx.call_workflow(name, config.get("input", {}), wait=mode == "sync")
    except StepError:
        raise
    except WorkflowError as exc:
        raise StepError(f"step.workflow_call: cannot start workflow {name!r}: {exc}",
                        type="workflow_call") from None
    child_id = summary.get("id")
    if mode != "sync":
        return {"execution_id": child_id}
    status = summary.get("status")
    if status != "completed":
        error = summary.get("error") or {}
        message = error.get("message") if isinstance(error, Mapping) else str(error)
        raise StepError(f"step.workflow_call: workflow {name!r} (execution {child_id}) ended "
                        f"{status}: {message or 'no error message'}", type="workflow_failed",
                        status=error.get("status") if isinstance(error, Mapping) else None,
                        details={"execution_id": child_id, "status": status, "error": error})
    output = summary.get("output")
    mapping = config.get("output_mapping")
    if not mapping:
        if output is None:
            return {}
        return dict(output) if isinstance(output, Mapping) else {"result": output}
    view = output if isinstance(output, Mapping) else {"output": output}
    mapped: dict[str, Any] = {}
    for key, template in mapping.items():
        try:
            mapped[key] = compile_value(template).render(view)
        except ExpressionError as exc:
            raise StepError(f"step.workflow_call: output_mapping.{key} of workflow {name!r}: {exc}",
                            type="expression") from None
    return mapped


# ---------------------------------------------------------------- metadata

_FIELD_DOC = ("The value to route on: a template such as '{{ .status }}', or a path into the "
              "context such as 'status' or 'steps.check.status'.")
_STEP_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9_-]+$"}

STEP_TYPES: list[StepType] = [
    StepType(
        name="step.conditional",
        run=run_conditional,
        description="Jump to a step chosen by a value (`field` + `routes`) or a test (`if`).",
        category="control",
        schema={
            **config_schema({
                "field": {"description": _FIELD_DOC},
                "routes": {"type": "object", "additionalProperties": _STEP_NAME,
                           "description": "Value -> step to jump to. Values compare as text: "
                           "true, false, null, numbers and strings."},
                "default": {**_STEP_NAME, "description": "Step to jump to when no route matches; "
                            "without it an unmatched value fails the step."},
                "if": {"description": "A condition: a template or a bare jq program; truthy "
                       "jumps to `then`, falsy to `else`."},
                "then": {**_STEP_NAME, "description": "Step to jump to when `if` is truthy."},
                "else": {**_STEP_NAME, "description": "Step to jump to when `if` is falsy; "
                         "without it the pipeline continues with the next step."},
            }),
            # One of two forms; the keywords are chosen so validation messages read well.
            "anyOf": [{"required": ["field"]}, {"required": ["if"]}],
            "dependentRequired": {"field": ["routes"], "routes": ["field"],
                                  "default": ["field"], "if": ["then"], "then": ["if"],
                                  "else": ["if"]},
            "dependentSchemas": {"field": {"properties": {"if": False, "then": False,
                                                          "else": False}}},
        },
        output="{matched_value, next_step}; the pipeline continues at next_step.",
        program_keys=frozenset({"if"}),
        step_refs=frozenset({"routes.*", "default", "then", "else"}),
        example={"field": "{{ .status }}", "routes": {"approved": "ship", "rejected": "notify"},
                 "default": "review"},
    ),
    StepType(
        name="step.branch",
        run=run_branch,
        description="Run one list of steps inline, chosen by a value, then optionally jump.",
        category="control",
        schema=config_schema({
            "field": {"description": _FIELD_DOC},
            "branches": {"type": "object", "additionalProperties": STEP_LIST_SCHEMA,
                         "description": "Value -> the steps to run for it (their outputs join "
                         "the pipeline's context)."},
            "default": {**STEP_LIST_SCHEMA, "description": "Steps for an unmatched value; "
                        "without it an unmatched value fails the step."},
            "merge_step": {**_STEP_NAME, "description": "Step to continue at after the branch "
                           "(default: the next step)."},
        }, required=["field", "branches"]),
        output="{matched_value, branch}: the value and the branch taken ('default' for the "
               "default list). A step in the branch that stops the pipeline (a response, "
               "pipeline_output) makes its output this step's and stops.",
        substep_keys={"branches": "map", "default": "list"},
        step_refs=frozenset({"merge_step"}),
        example={"field": "{{ .tier }}", "branches": {
            "gold": [{"name": "discount", "type": "step.set",
                      "config": {"values": {"rate": 0.2}}}],
        }, "default": [{"name": "no-discount", "type": "step.set",
                        "config": {"values": {"rate": 0}}}]},
    ),
    StepType(
        name="step.foreach",
        run=run_foreach,
        description="Run steps once per item of a collection, sequentially or with bounded "
                    "concurrency.",
        category="control",
        schema=config_schema({
            "collection": {"description": "The items: a template resolving to an array (an "
                           "object is iterated as {key, value} entries)."},
            "item_var": {"type": "string", "default": "item",
                         "description": "Variable holding the current item, e.g. "
                         "'{{ .item.id }}'."},
            "index_var": {"type": "string", "default": "index",
                          "description": "Variable holding the 0-based position."},
            "steps": {**STEP_LIST_SCHEMA, "minItems": 1,
                      "description": "Steps run for each item, in their own scope."},
            "concurrency": {"type": "integer", "minimum": 0, "default": 0,
                            "description": "0 runs items one by one; N runs at most N at once."},
            "error_strategy": {"enum": ["fail_fast", "collect_errors"], "default": "fail_fast",
                               "description": "fail_fast stops at the first failed item; "
                               "collect_errors runs every item and reports failures."},
        }, required=["collection", "steps"]),
        output="{results (each item's last step output, in item order; null for failed items), "
               "count, error_count, errors ([{index, item, error}], with collect_errors)}.",
        substep_keys={"steps": "list"},
        example={"collection": "{{ .orders }}", "concurrency": 4, "steps": [
            {"name": "price", "type": "step.set",
             "config": {"values": {"total": "{{ .item.qty * .item.price }}"}}}]},
    ),
    StepType(
        name="step.while",
        run=run_while,
        description="Repeat steps while a condition holds (bounded by max_iterations).",
        category="control",
        schema=config_schema({
            "condition": {"description": "Re-evaluated before every iteration: a template or a "
                          "bare jq program. It sees the context with every iteration's outputs "
                          "merged over it, `.steps.<name>` of the last iteration, and "
                          "`.iteration` (iterations completed so far)."},
            "steps": {**STEP_LIST_SCHEMA, "minItems": 1,
                      "description": "The loop body. It sees the previous iterations' outputs "
                      "merged at the top level and `.iteration`."},
            "max_iterations": {"type": "integer", "minimum": 1, "default": 1000,
                               "description": "More iterations than this fail the step."},
        }, required=["condition", "steps"]),
        output="{iterations, last (the last iteration's last step output)}.",
        raw_keys=frozenset({"condition"}),
        program_keys=frozenset({"condition"}),
        substep_keys={"steps": "list"},
        example={"condition": "{{ (.page // 0) < 3 }}", "max_iterations": 100, "steps": [
            {"name": "next-page", "type": "step.set",
             "config": {"values": {"page": "{{ (.page // 0) + 1 }}"}}}]},
    ),
    StepType(
        name="step.parallel",
        run=run_parallel,
        description="Run named steps concurrently and collect their outputs by name.",
        category="control",
        schema=config_schema({
            "steps": {**STEP_LIST_SCHEMA, "minItems": 1,
                      "description": "Each step runs concurrently in its own scope."},
            "error_strategy": {"enum": ["fail_fast", "collect_errors"], "default": "fail_fast",
                               "description": "fail_fast cancels the others at the first "
                               "failure; collect_errors waits for all and reports failures."},
        }, required=["steps"]),
        output="{results: {name: output}, errors: {name: message}}.",
        substep_keys={"steps": "list"},
        example={"steps": [
            {"name": "profile", "type": "step.http_call", "config": {"url": "{{ .profile_url }}"}},
            {"name": "orders", "type": "step.http_call", "config": {"url": "{{ .orders_url }}"}},
        ]},
    ),
    StepType(
        name="step.workflow_call",
        run=run_workflow_call,
        description="Run another pipeline as a linked child execution.",
        category="flow",
        schema=config_schema({
            "workflow": {"type": "string", "description": "Name of the pipeline to run."},
            "input": {"description": "The child's trigger payload (templates resolved against "
                      "this execution), usually a map."},
            "mode": {"enum": ["sync", "async"], "default": "sync",
                     "description": "sync waits for the child and returns its output; async "
                     "starts it and returns its execution id."},
            "output_mapping": {"type": "object", "description": "Output key -> template "
                               "evaluated against the child's output (a non-object output "
                               "is `.output`)."},
        }, required=["workflow"]),
        output="sync: the child's output (an object; other values as {result}), or the "
               "`output_mapping` result; a failed child fails the step naming its execution "
               "id. async: {execution_id}.",
        raw_keys=frozenset({"output_mapping"}),
        pipeline_refs=frozenset({"workflow"}),
        example={"workflow": "price-order", "input": {"sku": "{{ .sku }}", "qty": "{{ .qty }}"},
                 "output_mapping": {"total": "{{ .total }}"}},
    ),
]
