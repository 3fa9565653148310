"""Versioned migration files, and `haul db migrate` for the app database.

One loader serves both trees under migrations/: the app's SQL (`postgres/NNNN_name.sql`) and
the Temporal keyspace bootstrap (`scylla/NNNN_name.cql`, applied by app.stack.scylla). Each
file is applied once and recorded with its checksum; a file edited after it was applied is
refused (write a new migration instead).

For the app database each file runs in its own transaction, and concurrent runs are serialised
by a Postgres advisory lock, so two workers booting together cannot apply a file twice.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg

# Arbitrary but fixed: the advisory-lock key every haul migrator takes.
LOCK_KEY = 0x4841554C  # "HAUL"
Tree = Literal["postgres", "scylla"]
SUFFIX: dict[Tree, str] = {"postgres": ".sql", "scylla": ".cql"}


class MigrationError(RuntimeError):
    """A migration cannot be applied safely."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def migrations_dir(tree: Tree = "postgres") -> Path:
    """The checkout's migrations/<tree>, or the copy installed with the wheel."""
    here = Path(__file__).resolve().parents[2] / "migrations" / tree
    if here.is_dir():
        return here
    installed = Path(sys.prefix) / "share" / "haul" / "migrations" / tree
    if installed.is_dir():
        return installed
    raise MigrationError(f"no migrations directory at {here} or {installed}")


def load(directory: Path | None = None, tree: Tree = "postgres") -> list[Migration]:
    """Every migration file of a tree, ordered by version; malformed names and shared
    versions are refused."""
    directory = directory or migrations_dir(tree)
    suffix = SUFFIX[tree]
    pattern = re.compile(rf"^(\d{{4}})_[a-z0-9_]+{re.escape(suffix)}$")
    found = []
    for path in sorted(directory.glob(f"*{suffix}")):
        match = pattern.match(path.name)
        if not match:
            raise MigrationError(
                f"{path.name}: migration files are named NNNN_description{suffix} (lowercase)"
            )
        found.append(Migration(int(match.group(1)), path.name, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version in {directory}")
    return found


def pending(wanted: list[Migration], done: Mapping[int, tuple[str, str]]) -> list[Migration]:
    """The migrations not yet applied, given what was recorded (version -> (name, checksum)).

    A recorded file whose text has changed since is refused, naming both checksums.
    """
    out = []
    for mig in wanted:
        if mig.version not in done:
            out.append(mig)
            continue
        name, checksum = done[mig.version]
        if checksum != mig.checksum:
            raise MigrationError(
                f"{mig.name} was changed after it was applied as {name} "
                f"(recorded checksum {checksum[:12]}, file now {mig.checksum[:12]}); "
                "restore the file and add a new migration for the change"
            )
    return out


def migrate(dsn: str, directory: Path | None = None) -> list[str]:
    """Apply pending SQL migrations to the app database; return the names applied now."""
    wanted = load(directory, "postgres")
    applied_now = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            conn.execute(
                """create table if not exists schema_migrations (
                       version integer primary key,
                       name text not null,
                       checksum text not null,
                       applied_at timestamptz not null default now())"""
            )
            rows = conn.execute("select version, name, checksum from schema_migrations").fetchall()
            for mig in pending(wanted, {v: (n, c) for v, n, c in rows}):
                with conn.transaction():
                    conn.execute(mig.text)  # type: ignore[arg-type]
                    conn.execute(
                        "insert into schema_migrations (version, name, checksum)"
                        " values (%s, %s, %s)",
                        (mig.version, mig.name, mig.checksum),
                    )
                applied_now.append(mig.name)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))
    return applied_now
