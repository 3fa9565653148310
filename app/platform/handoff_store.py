"""Handoff rows in the app database (migrations/postgres/0007): one per handed-off workflow ID.

    snapshotted -> resuming -> resumed

The old run writes the row (`record`) and, while it is still open, appends events that reach it
afterwards (`forward`). Once it is closed, one resumer (under the ID's advisory lock, see
ClusterRouter.resume_handoff) moves the row to `resuming`, reading the final snapshot in the
same statement, starts the continuation on the new cluster and marks it `resumed`. Forwards
lock the row, so an event is either in the snapshot the resumer read or finds the row no longer
`snapshotted`: it is never appended where nobody reads it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from app.core.database import Database
from app.platform.handoff_models import HandoffSnapshot


class HandoffStatus(StrEnum):
    SNAPSHOTTED = "snapshotted"
    RESUMING = "resuming"
    RESUMED = "resumed"


@dataclass(frozen=True)
class HandoffRow:
    workflow_id: str
    workflow_type: str
    task_queue: str
    from_cluster: str
    to_cluster: str
    from_run_id: str
    snapshot: dict[str, Any]
    forwarded: int
    status: HandoffStatus
    new_run_before: str | None
    resumed_run_id: str | None


class ResumeStep(StrEnum):
    NOTHING = "nothing"  # no handoff, or already resumed
    START = "start"  # start the continuation on the new cluster
    STARTED = "started"  # a resumer started it and stopped before marking it resumed


def resume_step(row: HandoffRow | None, latest_new_run: str) -> ResumeStep:
    """What a resumer holding the ID's lock does, given the ID's latest run on the new cluster
    ('' for none). A row left `resuming` was started iff that run changed since it was noted."""
    if row is None or row.status is HandoffStatus.RESUMED:
        return ResumeStep.NOTHING
    if row.status is HandoffStatus.RESUMING and latest_new_run != (row.new_run_before or ""):
        return ResumeStep.STARTED
    return ResumeStep.START


def merge_pending(
    snapshot: dict[str, Any], events: list[dict[str, Any]]
) -> tuple[dict[str, Any], int]:
    """The snapshot with `events` appended to its pending list, each event ID once; and how
    many were new (a retried forward appends nothing twice)."""
    pending = list(snapshot.get("pending") or [])
    have = {e["event_id"] for e in pending}
    added = 0
    for event in events:
        if event["event_id"] not in have:
            have.add(event["event_id"])
            pending.append(event)
            added += 1
    return {**snapshot, "pending": pending}, added


_COLUMNS = (
    "workflow_id, workflow_type, task_queue, from_cluster, to_cluster, from_run_id, snapshot, "
    "forwarded, status, new_run_before, resumed_run_id"
)


def _row(values: tuple[Any, ...]) -> HandoffRow:
    wf_id, wf_type, queue, src, dst, run_id, snapshot, forwarded, status, before, resumed = values
    return HandoffRow(
        workflow_id=wf_id,
        workflow_type=wf_type,
        task_queue=queue,
        from_cluster=src,
        to_cluster=dst,
        from_run_id=run_id,
        snapshot=snapshot if isinstance(snapshot, dict) else json.loads(snapshot),
        forwarded=int(forwarded),
        status=HandoffStatus(status),
        new_run_before=before,
        resumed_run_id=resumed,
    )


class HandoffStore:
    """Reads and writes workflow_handoffs; synchronous (the router calls it on its executor)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, snap: HandoffSnapshot) -> bool:
        """Write a run's snapshot; False when this run's snapshot is there already (a retried
        or late attempt must not overwrite events forwarded since). An earlier handoff of the
        same ID, by another run, is replaced."""
        with self.db.connect() as conn:
            cur = conn.execute(
                """insert into workflow_handoffs
                       (workflow_id, workflow_type, task_queue, from_cluster, to_cluster,
                        from_run_id, snapshot, status)
                   values (%s, %s, %s, %s, %s, %s, %s, 'snapshotted')
                   on conflict (workflow_id) do update set
                       workflow_type = excluded.workflow_type,
                       task_queue = excluded.task_queue,
                       from_cluster = excluded.from_cluster, to_cluster = excluded.to_cluster,
                       from_run_id = excluded.from_run_id, snapshot = excluded.snapshot,
                       forwarded = 0, status = 'snapshotted', new_run_before = null,
                       resumed_run_id = null, snapshotted_at = now(), resumed_at = null
                   where workflow_handoffs.from_run_id <> excluded.from_run_id""",
                (
                    snap.workflow_id,
                    snap.workflow_type,
                    snap.task_queue,
                    snap.from_cluster,
                    snap.to_cluster,
                    snap.from_run_id,
                    Jsonb(snap.continuation),
                ),
            )
            return cur.rowcount == 1

    def forward(
        self, workflow_id: str, from_run_id: str, events: list[dict[str, Any]]
    ) -> tuple[int, bool]:
        """Append late events to the run's snapshot: (how many were new, whether every one of
        them is in the snapshot now). Only a `snapshotted` row of that run takes events."""
        with self.db.connect() as conn, conn.transaction():
            found = conn.execute(
                """select snapshot, status from workflow_handoffs
                   where workflow_id = %s and from_run_id = %s for update""",
                (workflow_id, from_run_id),
            ).fetchone()
            if found is None:
                return 0, False
            snapshot = found[0] if isinstance(found[0], dict) else json.loads(found[0])
            merged, added = merge_pending(snapshot, events)
            if found[1] != HandoffStatus.SNAPSHOTTED:
                # Only a late attempt of a forward that already succeeded gets here.
                return 0, added == 0
            if added:
                conn.execute(
                    """update workflow_handoffs set snapshot = %s, forwarded = forwarded + %s
                       where workflow_id = %s""",
                    (Jsonb(merged), added, workflow_id),
                )
            return added, True

    # -- resuming, under the ID's advisory lock (the caller's connection) -----------------------

    def row(self, conn: psycopg.Connection[Any], workflow_id: str) -> HandoffRow | None:
        found = conn.execute(
            f"select {_COLUMNS} from workflow_handoffs where workflow_id = %s", (workflow_id,)
        ).fetchone()
        return _row(found) if found else None

    def begin_resume(
        self, conn: psycopg.Connection[Any], workflow_id: str, new_run_before: str
    ) -> dict[str, Any]:
        """Close the row to forwards and note the new cluster's latest run; the final snapshot."""
        found = conn.execute(
            """update workflow_handoffs set status = 'resuming', new_run_before = %s
               where workflow_id = %s and status in ('snapshotted', 'resuming')
               returning snapshot""",
            (new_run_before, workflow_id),
        ).fetchone()
        if found is None:
            raise LookupError(f"handoff of {workflow_id} is not waiting to be resumed")
        return found[0] if isinstance(found[0], dict) else dict(json.loads(found[0]))

    def mark_resumed(self, conn: psycopg.Connection[Any], workflow_id: str, run_id: str) -> None:
        conn.execute(
            """update workflow_handoffs
               set status = 'resumed', resumed_run_id = %s, resumed_at = now()
               where workflow_id = %s""",
            (run_id, workflow_id),
        )

    # -- reading ---------------------------------------------------------------------------

    def waiting(self, workflow_id: str) -> bool:
        """True while the ID has a handoff not yet resumed (one indexed read)."""
        with self.db.connect() as conn:
            found = conn.execute(
                "select 1 from workflow_handoffs where workflow_id = %s and status <> 'resumed'",
                (workflow_id,),
            ).fetchone()
        return found is not None

    def get(self, workflow_id: str) -> HandoffRow | None:
        with self.db.connect() as conn:
            return self.row(conn, workflow_id)

    def counts(self, from_cluster: str) -> Counter[str]:
        """Handoffs away from `from_cluster`, by status."""
        with self.db.connect() as conn:
            rows = conn.execute(
                """select status, count(*) from workflow_handoffs where from_cluster = %s
                   group by status""",
                (from_cluster,),
            ).fetchall()
        return Counter({str(status): int(n) for status, n in rows})

    def unresumed(self, from_cluster: str) -> int:
        """Handoffs away from `from_cluster` whose continuation has not started yet."""
        counts = self.counts(from_cluster)
        return counts[HandoffStatus.SNAPSHOTTED] + counts[HandoffStatus.RESUMING]
