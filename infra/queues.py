"""Worker groups serve only task queues that some workflow or activity uses.

`haul worker` refuses a queue that discovery does not find, so a group naming one would
deploy pods that exit at start. The check runs before any resource is declared.
"""

from __future__ import annotations

from collections.abc import Iterable

from config import ConfigError, WorkerGroup


def discovered_task_queues() -> set[str]:
    """The task queues served by app.domains, as the worker's discovery finds them."""
    from app.platform.discovery import discovered_task_queues as discovered

    return set(discovered())


def check_worker_groups(groups: Iterable[WorkerGroup], known: set[str]) -> None:
    """Refuse a worker group that names a task queue no workflow or activity uses."""
    problems = [
        f"worker group {g.name} names task queue(s) {unknown}"
        for g in groups
        if (unknown := [q for q in g.task_queues if q not in known])
    ]
    if problems:
        raise ConfigError(
            f"haul:apps.workerGroups: {'; '.join(problems)}, which no workflow or activity in "
            f"app.domains uses (known: {sorted(known)}); name only those queues, or first add "
            "the domain that serves them"
        )
