"""A domain declares its name, owning team and task queue once, in its package's `__init__`.

    DOMAIN = Domain(name="parcel", team="parcel", task_queue="parcel")

Its workflows are `@DOMAIN.workflow` classes and its activities are methods marked
`@activity_method` on a `@DOMAIN.activities` class; discovery files both under the domain, so
the worker builder, the client and infra read the task queue from this one object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from temporalio import activity, workflow

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_WORKFLOW_ATTR = "__haul_workflow_domain__"
_SERVICE_ATTR = "__haul_activities_domain__"
_ACTIVITY_ATTR = "__haul_activity__"


@dataclass(frozen=True)
class Domain:
    """One business domain: what it is called, which team owns it, which queue serves it."""

    name: str
    team: str
    task_queue: str

    @overload
    def workflow(self, cls: type[T]) -> type[T]: ...

    @overload
    def workflow(
        self, *, name: str | None = None, sandboxed: bool = True
    ) -> Callable[[type[T]], type[T]]: ...

    def workflow(
        self, cls: type[T] | None = None, *, name: str | None = None, sandboxed: bool = True
    ) -> type[T] | Callable[[type[T]], type[T]]:
        """`workflow.defn` that files the workflow under this domain."""

        def mark(c: type[T]) -> type[T]:
            defined = workflow.defn(name=name, sandboxed=sandboxed)(c)
            setattr(defined, _WORKFLOW_ATTR, self)
            return defined

        return mark(cls) if cls is not None else mark

    def activities(self, cls: type[T]) -> type[T]:
        """Mark a class whose `@activity_method` methods are this domain's activities."""
        setattr(cls, _SERVICE_ATTR, self)
        return cls


def activity_method(fn: F | None = None, *, name: str | None = None) -> Any:
    """Mark a method of a `@DOMAIN.activities` class as a Temporal activity."""

    def mark(f: F) -> F:
        defined = activity.defn(name=name)(f) if name else activity.defn(f)
        setattr(defined, _ACTIVITY_ATTR, True)
        return defined

    return mark(fn) if fn is not None else mark


def is_activity_method(member: object) -> bool:
    return bool(getattr(member, _ACTIVITY_ATTR, False))


def workflow_domain(cls: type) -> Domain | None:
    """The domain a `@DOMAIN.workflow` class belongs to (inherited by subclasses)."""
    return getattr(cls, _WORKFLOW_ATTR, None)


def activities_domain(cls: type) -> Domain | None:
    """The domain of a `@DOMAIN.activities` class itself, never one it inherits from."""
    found = cls.__dict__.get(_SERVICE_ATTR)
    return found if isinstance(found, Domain) else None
