"""Workflow and activity discovery: a domain declares itself once, and the worker finds the rest.

Each domain package holds a `Domain` (see app.platform.domain) whose decorators mark its
workflows and activity classes. `discover()` imports every module under `app.domains` and
returns what each task queue serves, refusing duplicate names with a message that names both
places; `discovered_task_queues()` is the same answer reduced to queue -> owning teams, the
list infra checks its worker groups against.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity, workflow

from app.platform.domain import (
    Domain,
    activities_domain,
    is_activity_method,
    workflow_domain,
)

DOMAIN_PACKAGES = ("app.domains",)


class DuplicateRegistrationError(RuntimeError):
    """Two definitions share a Temporal name; the worker would silently pick one."""


@dataclass
class TaskQueueRegistration:
    """Everything one task queue serves, and the domains that put it there."""

    task_queue: str
    workflows: list[type] = field(default_factory=list)
    activity_classes: list[type] = field(default_factory=list)
    domains: list[Domain] = field(default_factory=list)

    def add_domain(self, domain: Domain) -> None:
        if domain not in self.domains:
            self.domains.append(domain)


@dataclass
class Discovered:
    queues: dict[str, TaskQueueRegistration] = field(default_factory=dict)

    def queue(self, domain: Domain) -> TaskQueueRegistration:
        reg = self.queues.setdefault(domain.task_queue, TaskQueueRegistration(domain.task_queue))
        reg.add_domain(domain)
        return reg


def workflow_type_name(cls: type) -> str:
    """The registered Temporal name of a workflow class."""
    return workflow._Definition.must_from_class(cls).name or cls.__name__


def task_queue_for(cls: type, task_queue: str | None = None) -> str:
    """The task queue a workflow class runs on: the one given, else its domain's."""
    if task_queue:
        return task_queue
    domain = workflow_domain(cls)
    if domain is None:
        raise ValueError(
            f"{cls.__qualname__} belongs to no domain (no `@DOMAIN.workflow`); pass task_queue="
        )
    return domain.task_queue


def _place(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def activity_names(cls: type) -> dict[str, Callable[..., Any]]:
    """Temporal activity name -> unbound method, for one activities class."""
    names = {}
    for _, member in inspect.getmembers(cls, predicate=callable):
        if is_activity_method(member):
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


def discover(packages: Iterable[str] = DOMAIN_PACKAGES) -> Discovered:
    """Find every domain's workflows and activity classes, refusing duplicate names."""
    found = Discovered()
    workflows: dict[str, type] = {}
    acts: dict[str, Callable[..., Any]] = {}
    seen: set[int] = set()
    for module in iter_modules(packages):
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if id(obj) in seen or obj.__module__ != module.__name__:
                continue
            seen.add(id(obj))
            if (wf_domain := workflow_domain(obj)) is not None:
                wf_name = workflow_type_name(obj)
                if wf_name in workflows:
                    raise DuplicateRegistrationError(
                        f"workflow name {wf_name!r} is defined twice: in "
                        f"{_place(workflows[wf_name])} and in {_place(obj)}; rename one"
                    )
                workflows[wf_name] = obj
                found.queue(wf_domain).workflows.append(obj)
            if (act_domain := activities_domain(obj)) is not None:
                for act_name, method in activity_names(obj).items():
                    if act_name in acts:
                        raise DuplicateRegistrationError(
                            f"activity name {act_name!r} is defined twice: in "
                            f"{_place(acts[act_name])} and in {_place(method)}; rename one"
                        )
                    acts[act_name] = method
                found.queue(act_domain).activity_classes.append(obj)
    return found


def discovered_task_queues(packages: Iterable[str] = DOMAIN_PACKAGES) -> dict[str, frozenset[str]]:
    """Every task queue the app's domains serve -> the teams that own them.

    A worker group (infra) or `HAUL_TASK_QUEUES` naming a queue outside this map would start
    workers that refuse to run; check against it before declaring anything.
    """
    return {
        name: frozenset(d.team for d in reg.domains)
        for name, reg in sorted(discover(packages).queues.items())
    }
