"""The migration state in the app database: phase, routers' acknowledgements, ID locks, claims.

Every method is synchronous (psycopg_pool via app.core.database); the router calls them on its
own executor. A transition is announced in one transaction that re-checks, under a table lock,
that the current version is in effect, so two operators cannot race each other past a step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from app.core.database import Database
from app.platform.phases import Action, Facts, MigrationState, Phase, Step, transition

# Class of the two-key advisory locks on workflow IDs; apart from the migrator's one-key lock.
ID_LOCK_CLASS = 0x4855  # "HU"
DEFAULT_TTL_SECONDS = 15.0


@dataclass(frozen=True)
class RouterRow:
    """One router process as its heartbeat row shows it."""

    router_id: str
    host: str
    pid: int
    acked_version: int
    last_seen: datetime
    live: bool


class MigrationStore:
    """Reads and writes the migration tables of migrations/postgres/0003."""

    def __init__(self, db: Database, *, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        self.db = db
        self.ttl_seconds = ttl_seconds

    # -- the state -------------------------------------------------------------------------

    def read(self) -> MigrationState | None:
        """The current state, or None when no migration was ever started."""
        with self.db.connect() as conn:
            row = conn.execute(
                "select old_cluster, new_cluster, phase, step, version from cluster_migration"
            ).fetchone()
        return _state(row) if row else None

    def announce(
        self,
        action: Action,
        facts: Facts | None = None,
        *,
        actor: str,
        reason: str,
        old_cluster: str | None = None,
        new_cluster: str | None = None,
    ) -> MigrationState:
        """Validate and write one transition; TransitionRefusedError says why it cannot be."""
        with self.db.connect() as conn, conn.transaction():
            conn.execute("lock table cluster_migration in share row exclusive mode")
            row = conn.execute(
                "select old_cluster, new_cluster, phase, step, version from cluster_migration"
            ).fetchone()
            if row:
                current = _state(row)
            elif old_cluster:
                current = MigrationState(old=old_cluster)
            else:
                raise ValueError("no migration row yet: name the cluster in use (old_cluster)")
            facts = replace(
                facts or Facts(), current_in_effect=self._in_effect(conn, current.version)
            )
            nxt = transition(current, action, facts, new_cluster=new_cluster)
            if action is Action.START:
                conn.execute("delete from cluster_claims")
            conn.execute(
                """insert into cluster_migration
                       (id, old_cluster, new_cluster, phase, step, version, began)
                   values (1, %(old)s, %(new)s, %(phase)s, %(step)s, %(version)s,
                           jsonb_build_object(%(stage)s::text, now()))
                   on conflict (id) do update set
                       old_cluster = excluded.old_cluster, new_cluster = excluded.new_cluster,
                       phase = excluded.phase, step = excluded.step,
                       version = excluded.version, phase_began_at = now(),
                       began = cluster_migration.began || excluded.began, updated_at = now()""",
                {
                    "old": nxt.old,
                    "new": nxt.new,
                    "phase": str(nxt.phase),
                    "step": str(nxt.step),
                    "version": nxt.version,
                    "stage": nxt.stage,
                },
            )
            conn.execute(
                """insert into cluster_migration_history
                       (version, from_phase, to_phase, old_cluster, new_cluster, actor, reason)
                   values (%s, %s, %s, %s, %s, %s, %s)""",
                (nxt.version, current.stage, nxt.stage, nxt.old, nxt.new, actor, reason),
            )
        return nxt

    def history(self) -> list[dict[str, Any]]:
        with self.db.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute("select * from cluster_migration_history order by id").fetchall()

    def began(self) -> dict[str, str]:
        """When each stage last began (ISO timestamps), for `haul migrate status`."""
        with self.db.connect() as conn:
            row = conn.execute("select began from cluster_migration").fetchone()
        if not row:
            return {}
        began = row[0]
        return dict(began if isinstance(began, dict) else json.loads(began))

    # -- routers ---------------------------------------------------------------------------

    def heartbeat(self, router_id: str, host: str, pid: int, acked_version: int) -> None:
        """Record that a router is alive and which version it acknowledges."""
        with self.db.connect() as conn:
            conn.execute(
                """insert into cluster_routers (router_id, host, pid, acked_version)
                   values (%s, %s, %s, %s)
                   on conflict (router_id) do update set
                       acked_version = excluded.acked_version, last_seen = now()""",
                (router_id, host, pid, acked_version),
            )

    def forget_router(self, router_id: str) -> None:
        """A router that stops cleanly leaves at once instead of after the TTL."""
        with self.db.connect() as conn:
            conn.execute("delete from cluster_routers where router_id = %s", (router_id,))

    def routers(self) -> list[RouterRow]:
        with self.db.connect() as conn:
            rows = conn.execute(
                """select router_id, host, pid, acked_version, last_seen,
                          last_seen > now() - make_interval(secs => %s)
                   from cluster_routers order by router_id""",
                (self.ttl_seconds,),
            ).fetchall()
        return [RouterRow(*row) for row in rows]

    def in_effect(self, version: int) -> bool:
        """True when every live router (seen within the TTL) has acknowledged `version`."""
        with self.db.connect() as conn:
            return self._in_effect(conn, version)

    def behind(self, version: int) -> list[RouterRow]:
        """Live routers that have not acknowledged `version` yet."""
        return [r for r in self.routers() if r.live and r.acked_version < version]

    def _in_effect(self, conn: psycopg.Connection[Any], version: int) -> bool:
        row = conn.execute(
            """select not exists (
                   select 1 from cluster_routers
                   where last_seen > now() - make_interval(secs => %s) and acked_version < %s)""",
            (self.ttl_seconds, version),
        ).fetchone()
        return bool(row and row[0])

    # -- per-ID lock and claims (held across a Temporal call, so on a dedicated connection) -----

    def lock_id(self, workflow_id: str) -> psycopg.Connection[Any]:
        """Take the ID's session lock on a connection kept out of the pool until unlock_id."""
        conn = self.db.pool.getconn()
        try:
            conn.execute("select pg_advisory_lock(%s, hashtext(%s))", (ID_LOCK_CLASS, workflow_id))
        except BaseException:
            self.db.pool.putconn(conn)
            raise
        return conn

    def unlock_id(self, conn: psycopg.Connection[Any], workflow_id: str) -> None:
        try:
            conn.execute(
                "select pg_advisory_unlock(%s, hashtext(%s))", (ID_LOCK_CLASS, workflow_id)
            )
        finally:
            # A broken connection is discarded by the pool; its session lock died with it.
            self.db.pool.putconn(conn)

    def claimed_cluster(self, conn: psycopg.Connection[Any], workflow_id: str) -> str | None:
        row = conn.execute(
            "select cluster from cluster_claims where workflow_id = %s", (workflow_id,)
        ).fetchone()
        return str(row[0]) if row else None

    def claim(
        self, conn: psycopg.Connection[Any], workflow_id: str, cluster: str, version: int
    ) -> None:
        conn.execute(
            """insert into cluster_claims (workflow_id, cluster, version) values (%s, %s, %s)
               on conflict (workflow_id) do update set
                   cluster = excluded.cluster, version = excluded.version, claimed_at = now()""",
            (workflow_id, cluster, version),
        )


def _state(row: tuple[Any, ...]) -> MigrationState:
    old, new, phase, step, version = row
    return MigrationState(
        old=old, new=new, phase=Phase(phase), step=Step(step), version=int(version)
    )
