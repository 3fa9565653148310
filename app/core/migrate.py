"""`haul db migrate`: apply the versioned SQL in migrations/postgres/ exactly once each.

Each file runs in its own transaction and is recorded with its checksum. A file edited after
it was applied is refused (write a new migration instead). Concurrent runs are serialised by a
Postgres advisory lock, so two workers booting together cannot apply a file twice.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg

# Arbitrary but fixed: the advisory-lock key every haul migrator takes.
LOCK_KEY = 0x4841554C  # "HAUL"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    """A migration cannot be applied safely."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Path:
    """The checkout's migrations/postgres, or the copy installed with the wheel."""
    here = Path(__file__).resolve().parents[2] / "migrations" / "postgres"
    if here.is_dir():
        return here
    installed = Path(sys.prefix) / "share" / "haul" / "migrations" / "postgres"
    if installed.is_dir():
        return installed
    raise MigrationError(f"no migrations directory at {here} or {installed}")


def load(directory: Path | None = None) -> list[Migration]:
    """Every migration file, ordered by version; malformed names and gaps are refused."""
    directory = directory or migrations_dir()
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(
                f"{path.name}: migration files are named NNNN_description.sql (lowercase)"
            )
        found.append(Migration(int(match.group(1)), path.name, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version in {directory}")
    return found


def migrate(dsn: str, directory: Path | None = None) -> list[str]:
    """Apply pending migrations; return the names applied by this call."""
    wanted = load(directory)
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
            done = {v: (n, c) for v, n, c in rows}
            for mig in wanted:
                if mig.version in done:
                    name, checksum = done[mig.version]
                    if checksum != mig.checksum:
                        raise MigrationError(
                            f"{mig.name} was changed after it was applied as {name} "
                            f"(recorded checksum {checksum[:12]}, file now {mig.checksum[:12]}); "
                            "restore the file and add a new migration for the change"
                        )
                    continue
                with conn.transaction():
                    conn.execute(mig.sql)  # type: ignore[arg-type]
                    conn.execute(
                        "insert into schema_migrations (version, name, checksum)"
                        " values (%s, %s, %s)",
                        (mig.version, mig.name, mig.checksum),
                    )
                applied_now.append(mig.name)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))
    return applied_now
