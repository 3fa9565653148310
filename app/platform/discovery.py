"""Activity and workflow discovery: decorate once, and the worker builder finds everything.

A service class marked with `@activities(...)` holds activities marked with `@activity_method`.
Workflows are marked with `@workflow_defn(...)`, which also records their owner team and task
queue. `discover()` imports every module under `app.domains` and returns what each task queue
serves, refusing duplicate names with a message that names both places.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from temporalio import activity, workflow

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_SERVICE_ATTR = "__haul_service__"
_ACTIVITY_ATTR = "__haul_activity__"
_WORKFLOW_ATTR = "__haul_workflow__"


class DuplicateRegistrationError(RuntimeError):
    """Two definitions share a Temporal name; the worker would silently pick one."""


@dataclass(frozen=True)
class Owner:
    team: str
    task_queue: str


def activities(*, team: str, task_queue: str) -> Callable[[type[T]], type[T]]:
    """Mark a class whose `@activity_method` methods are activities on task_queue."""

    def mark(cls: type[T]) -> type[T]:
        setattr(cls, _SERVICE_ATTR, Owner(team, task_queue))
        return cls

    return mark


def activity_method(fn: F | None = None, *, name: str | None = None) -> Any:
    """Mark a method of an `@activities` class as a Temporal activity."""

    def mark(f: F) -> F:
        defined = activity.defn(name=name)(f) if name else activity.defn(f)
        setattr(defined, _ACTIVITY_ATTR, True)
        return defined

    return mark(fn) if fn is not None else mark


def workflow_defn(
    *, team: str, task_queue: str, name: str | None = None, sandboxed: bool = True
) -> Callable[[type[T]], type[T]]:
    """`workflow.defn` that also records the workflow's owner team and task queue."""

    def mark(cls: type[T]) -> type[T]:
        defined = workflow.defn(name=name, sandboxed=sandboxed)(cls)
        setattr(defined, _WORKFLOW_ATTR, Owner(team, task_queue))
        return defined

    return mark


def owner_of(obj: Any) -> Owner | None:
    return getattr(obj, _WORKFLOW_ATTR, None) or getattr(obj, _SERVICE_ATTR, None)


@dataclass
class TaskQueueRegistration:
    """Everything one task queue serves."""

    task_queue: str
    workflows: list[type] = field(default_factory=list)
    activity_classes: list[type] = field(default_factory=list)


@dataclass
class Discovered:
    queues: dict[str, TaskQueueRegistration] = field(default_factory=dict)

    def queue(self, name: str) -> TaskQueueRegistration:
        return self.queues.setdefault(name, TaskQueueRegistration(name))


def _place(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def activity_names(cls: type) -> dict[str, Callable[..., Any]]:
    """Temporal activity name -> unbound method, for one service class."""
    names = {}
    for _, member in inspect.getmembers(cls, predicate=callable):
        if getattr(member, _ACTIVITY_ATTR, False):
            defn = activity._Definition.from_callable(member)
            if defn and defn.name:
                names[defn.name] = member
    return names


def iter_modules(packages: Iterable[str]) -> Iterable[Any]:
    """Import every module under the given packages."""
    for pkg_name in packages:
        pkg = importlib.import_module(pkg_name)
        yield pkg
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg_name}."):
            yield importlib.import_module(info.name)


def discover(packages: Iterable[str] = ("app.domains",)) -> Discovered:
    """Find every marked workflow and activity class, refusing duplicate names."""
    found = Discovered()
    workflows: dict[str, type] = {}
    acts: dict[str, Callable[..., Any]] = {}
    seen: set[int] = set()
    for module in iter_modules(packages):
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if id(obj) in seen or obj.__module__ != module.__name__:
                continue
            seen.add(id(obj))
            if (wf_owner := getattr(obj, _WORKFLOW_ATTR, None)) is not None:
                wf_name = workflow._Definition.must_from_class(obj).name or obj.__name__
                if wf_name in workflows:
                    raise DuplicateRegistrationError(
                        f"workflow name {wf_name!r} is defined twice: in "
                        f"{_place(workflows[wf_name])} and in {_place(obj)}; rename one"
                    )
                workflows[wf_name] = obj
                found.queue(wf_owner.task_queue).workflows.append(obj)
            if (svc_owner := obj.__dict__.get(_SERVICE_ATTR)) is not None:
                for act_name, method in activity_names(obj).items():
                    if act_name in acts:
                        raise DuplicateRegistrationError(
                            f"activity name {act_name!r} is defined twice: in "
                            f"{_place(acts[act_name])} and in {_place(method)}; rename one"
                        )
                    acts[act_name] = method
                found.queue(svc_owner.task_queue).activity_classes.append(obj)
    return found
