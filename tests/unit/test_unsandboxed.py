"""Workflows that run without the sandbox may reach only what cannot make them non-deterministic.

The sandbox would stop a workflow that reads the clock, draws a random number or does I/O;
a workflow marked `sandboxed=False` (app.platform.sandbox) has no such guard, so this test is
it: every global name such a workflow's code uses must resolve to a workflow API, an input
model or activity reference of a domain, a constant, or a builtin that is deterministic.
The replay tier (tests/replay) then replays their committed histories without the sandbox.
"""

from __future__ import annotations

import ast
import builtins
import datetime
import enum
import inspect
import textwrap
import time
import types
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import _Definition

from app.platform import sandbox
from app.platform.discovery import discover

SAFE_BUILTINS = {
    "len", "min", "max", "range", "enumerate", "sorted", "isinstance", "list", "dict", "tuple",
    "str", "int", "float", "bool", "sum", "any", "all", "zip", "reversed", "ValueError",
    "TypeError", "KeyError", "RuntimeError", "Exception", "BaseException", "super", "None",
    "True", "False", "NotImplementedError", "divmod", "abs", "round", "frozenset", "getattr",
    "type", "object",
}  # fmt: skip
SAFE_MODULES = {"temporalio.workflow", "asyncio"}
SAFE_VALUE_TYPES = (str, int, float, bool, bytes, datetime.timedelta, RetryPolicy, enum.Enum)


def _safe_origin(module: str) -> bool:
    if module.startswith(("temporalio.", "datetime", "typing", "pydantic")):
        return True
    if module.startswith("app.domains.") and module.rsplit(".", 1)[-1] in ("models", "activities"):
        return True
    return any(module == p or module.startswith(p + ".") for p in sandbox.PASSTHROUGH_MODULES)


def unsafe_names(obj: Any, seen: set[int] | None = None) -> list[str]:
    """Global names obj's source uses that could make a workflow non-deterministic."""
    seen = seen if seen is not None else set()
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
    module_globals = vars(inspect.getmodule(obj))
    names = [n for n in ast.walk(tree) if isinstance(n, ast.Name)]
    bound = {n.id for n in names if isinstance(n.ctx, ast.Store)}
    bound |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments) for a in
              [*n.args, *n.kwonlyargs, *([n.vararg] if n.vararg else []),
               *([n.kwarg] if n.kwarg else [])]}  # fmt: skip
    bound |= {n.name for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler) and n.name}
    problems = []
    for name in sorted({n.id for n in names} - bound):
        if name in module_globals:
            value = module_globals[name]
        elif hasattr(builtins, name):
            if name not in SAFE_BUILTINS:
                problems.append(f"builtin {name}")
            continue
        else:
            continue
        if isinstance(value, types.ModuleType):
            if value.__name__ not in SAFE_MODULES:
                problems.append(f"module {value.__name__} (as {name})")
        elif isinstance(value, type | types.FunctionType):
            origin = getattr(value, "__module__", "")
            if origin == obj.__module__ and isinstance(value, types.FunctionType):
                problems += unsafe_names(value, seen)
            elif not (_safe_origin(origin) or origin == obj.__module__):
                problems.append(f"{origin}.{value.__qualname__} (as {name})")
        elif isinstance(value, tuple | frozenset) and all(
            isinstance(v, SAFE_VALUE_TYPES) for v in value
        ):
            continue  # an immutable constant of plain values
        elif not isinstance(value, SAFE_VALUE_TYPES) and type(value).__module__ not in (
            sandbox.PASSTHROUGH_MODULES
        ):
            problems.append(f"{name}: a {type(value).__name__} value")
    return problems


def unsandboxed_workflows() -> list[type]:
    found = [wf for q in discover().queues.values() for wf in q.workflows]
    return [wf for wf in found if not _Definition.must_from_class(wf).sandboxed]


def test_the_load_generation_and_invoice_workflows_run_unsandboxed() -> None:
    names = {wf.__name__ for wf in unsandboxed_workflows()}
    assert {"NoopActivityWorkflow", "TimerWorkflow", "ParcelInvoiceWorkflow"} <= names


def test_every_unsandboxed_workflow_reaches_only_deterministic_names() -> None:
    problems = {wf.__name__: unsafe_names(wf) for wf in unsandboxed_workflows()}
    assert {k: v for k, v in problems.items() if v} == {}


class _ReadsTheClock:
    @workflow.run
    async def run(self) -> float:
        return time.time() + len(open("/etc/hostname").read())  # noqa: SIM115


def test_a_workflow_that_reads_the_clock_or_a_file_is_caught() -> None:
    assert unsafe_names(_ReadsTheClock) == ["builtin open", "module time (as time)"]
