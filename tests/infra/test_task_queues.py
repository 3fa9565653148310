"""Worker groups name only task queues that discovery finds in app.domains."""

from __future__ import annotations

import pytest
from infra_harness import STACKS, stack_file

from app.platform.discovery import discover


@pytest.fixture(scope="module")
def served() -> set[str]:
    return set(discover().queues)


@pytest.mark.parametrize("stack", STACKS)
def test_every_committed_stack_names_only_discovered_queues(stack, served):
    groups = stack_file(stack)["haul:apps"]["workerGroups"]
    named = {q for g in groups for q in g["taskQueues"]}
    assert named, stack
    assert named <= served, f"{stack}: {sorted(named - served)} are served by no domain"


def test_the_check_sees_the_same_queues_as_discovery(served):
    import queues

    assert queues.discovered_task_queues() == served
    assert {"parcel", "loadgen"} <= served


def test_an_unknown_queue_is_refused_naming_group_and_queue():
    import config
    import queues

    doc = stack_file("migration")
    stack = config.parse(doc)
    queues.check_worker_groups(stack.apps.worker_groups, {"parcel"})
    wrong = stack.apps.worker_groups[0].model_copy(
        update={"name": "audit", "task_queues": ["parcel", "rate-audit", "agents"]}
    )
    with pytest.raises(config.ConfigError) as err:
        queues.check_worker_groups([*stack.apps.worker_groups, wrong], {"parcel"})
    msg = str(err.value)
    assert "worker group audit names task queue(s) ['rate-audit', 'agents']" in msg
    assert "worker group ingest" not in msg
    assert "known: ['parcel']" in msg
