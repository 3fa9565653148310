"""`haul db scylla-bootstrap`: the Temporal keyspace on ScyllaDB (or Cassandra), from
migrations/scylla, applied with cassandra-driver.

The Helm chart's keyspace creation cannot turn tablets off, and Temporal needs lightweight
transactions, so the keyspace comes from here: NetworkTopologyStrategy with a replication
factor per datacenter from settings, plus `tablets = {'enabled': false}` when the server is
ScyllaDB (detected from its system tables). Files are `NNNN_description.cql` with `$keyspace`,
`$replication` and `$tablets` placeholders; each is applied once and recorded, with its
checksum, in `<keyspace>.haul_schema_migrations` (a file changed after it was applied is
refused). Every statement is idempotent (IF NOT EXISTS), so two concurrent runs are safe.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.cql$")
_KEYSPACE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
NTS = "org.apache.cassandra.locator.NetworkTopologyStrategy"
TRACKING_TABLE = "haul_schema_migrations"


class BootstrapError(RuntimeError):
    """The keyspace cannot be bootstrapped safely; the message says what to do."""


@dataclass(frozen=True)
class CqlTarget:
    """Where and how to bootstrap: contact points, keyspace and replication per datacenter."""

    hosts: list[str]
    port: int
    keyspace: str
    datacenter: str
    replication: dict[str, int]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if not _KEYSPACE.match(self.keyspace):
            raise BootstrapError(
                f"keyspace {self.keyspace!r} is not a valid CQL name; use letters, digits and "
                "'_', starting with a letter, at most 48 characters"
            )
        if not self.replication:
            raise BootstrapError(
                f"no replication factor is set for keyspace {self.keyspace!r}; give one per "
                "datacenter, e.g. dc1=3"
            )
        for dc, rf in self.replication.items():
            if not re.match(r"^[A-Za-z0-9_.-]+$", dc) or rf < 1:
                raise BootstrapError(
                    f"replication {dc!r}={rf} is not valid; give datacenter=factor with factor >= 1"
                )
        if self.datacenter not in self.replication:
            raise BootstrapError(
                f"local datacenter {self.datacenter!r} has no replication factor in "
                f"{self.replication}; add {self.datacenter}=<rf>"
            )

    @classmethod
    def from_store(
        cls, store: Any, environment: str = "dev", password: str | None = None
    ) -> CqlTarget:
        """From a ClusterSpec CassandraStore (app.stack.spec)."""
        return cls(
            hosts=list(store.hosts),
            port=store.port,
            keyspace=store.keyspace,
            datacenter=store.datacenter,
            replication=store.replication_for(environment),
            user=store.user,
            password=password,
            ca_file=store.tls.ca_file if store.tls.enabled else None,
            server_name=store.tls.server_name,
        )


def parse_replication(text: str) -> dict[str, int]:
    """`dc1=3,dc2=3` (or `dc1:3`) -> {"dc1": 3, "dc2": 3}."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        dc, sep, rf = part.replace(":", "=").partition("=")
        if not sep or not rf.strip().isdigit():
            raise BootstrapError(
                f"replication {part!r} is not datacenter=factor; write e.g. dc1=3,dc2=3"
            )
        out[dc.strip()] = int(rf)
    return out


@contextmanager
def session(target: CqlTarget, timeout: float = 30.0) -> Iterator[Any]:
    """A cassandra-driver session pinned to the local datacenter."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy

    profile = ExecutionProfile(
        load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=target.datacenter),
        request_timeout=timeout,
    )
    kwargs: dict[str, Any] = {}
    if target.user:
        kwargs["auth_provider"] = PlainTextAuthProvider(target.user, target.password or "")
    if target.ca_file:
        ctx = ssl.create_default_context(cafile=target.ca_file)
        kwargs["ssl_context"] = ctx
        if target.server_name:
            kwargs["ssl_options"] = {"server_hostname": target.server_name}
    cluster = Cluster(
        target.hosts,
        port=target.port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=10,
        **kwargs,
    )
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()


def is_scylla(sess: Any) -> bool:
    """ScyllaDB has its own tables in the system keyspace (scylla_local); Cassandra does not."""
    row = sess.execute(
        "SELECT table_name FROM system_schema.tables "
        "WHERE keyspace_name = 'system' AND table_name = 'scylla_local'"
    ).one()
    return row is not None


def replication_literal(replication: Mapping[str, int]) -> str:
    parts = ["'class': 'NetworkTopologyStrategy'"]
    parts += [f"'{dc}': {rf}" for dc, rf in sorted(replication.items())]
    return "{" + ", ".join(parts) + "}"


@dataclass(frozen=True)
class CqlMigration:
    version: int
    name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def statements(self, values: Mapping[str, str]) -> list[str]:
        body = "\n".join(
            line for line in self.text.splitlines() if not line.strip().startswith("--")
        )
        rendered = Template(body).substitute(values)
        return [s.strip() for s in rendered.split(";") if s.strip()]


def migrations_dir() -> Path:
    """The checkout's migrations/scylla, or the copy installed with the wheel."""
    here = Path(__file__).resolve().parents[2] / "migrations" / "scylla"
    if here.is_dir():
        return here
    installed = Path(sys.prefix) / "share" / "haul" / "migrations" / "scylla"
    if installed.is_dir():
        return installed
    raise BootstrapError(f"no CQL migrations directory at {here} or {installed}")


def load(directory: Path | None = None) -> list[CqlMigration]:
    directory = directory or migrations_dir()
    found = []
    for path in sorted(directory.glob("*.cql")):
        match = _NAME.match(path.name)
        if not match:
            raise BootstrapError(
                f"{path.name}: CQL migration files are named NNNN_description.cql (lowercase)"
            )
        found.append(CqlMigration(int(match.group(1)), path.name, path.read_text()))
    if len({m.version for m in found}) != len(found):
        raise BootstrapError(f"two CQL migration files share a version in {directory}")
    return found


def keyspace_replication(sess: Any, keyspace: str) -> dict[str, str] | None:
    row = sess.execute(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)
    ).one()
    return dict(row.replication) if row else None


def replication_mismatch(actual: Mapping[str, str], wanted: Mapping[str, int]) -> str | None:
    """Why a keyspace's replication differs from settings, or None when it matches."""
    cls = actual.get("class", "")
    if cls != NTS and not cls.endswith("NetworkTopologyStrategy"):
        return f"class is {cls.rsplit('.', 1)[-1] or '?'}, not NetworkTopologyStrategy"
    have = {k: int(v) for k, v in actual.items() if k != "class"}
    if have != dict(wanted):
        return f"replication factors are {have}, settings ask for {dict(wanted)}"
    return None


def bootstrap(target: CqlTarget, directory: Path | None = None) -> list[str]:
    """Apply pending migrations to the target; return the names applied by this call."""
    files = load(directory)
    with session(target) as sess:
        scylla = is_scylla(sess)
        values = {
            "keyspace": target.keyspace,
            "replication": replication_literal(target.replication),
            "tablets": "AND tablets = {'enabled': false}" if scylla else "",
        }
        existing = keyspace_replication(sess, target.keyspace)
        if existing is not None and (why := replication_mismatch(existing, target.replication)):
            raise BootstrapError(
                f"keyspace {target.keyspace!r} already exists and its {why}; change it with "
                f"ALTER KEYSPACE {target.keyspace} WITH replication = "
                f"{values['replication']} and run a full repair, or fix the settings"
            )
        done = _recorded(sess, target.keyspace)
        ran: list[CqlMigration] = []
        try:
            for mig in files:
                if mig.version in done:
                    name, checksum = done[mig.version]
                    if checksum != mig.checksum:
                        raise BootstrapError(
                            f"{mig.name} was changed after it was applied as {name} (recorded "
                            f"checksum {checksum[:12]}, file now {mig.checksum[:12]}); restore "
                            "it and add a new migration for the change"
                        )
                    continue
                for stmt in mig.statements(values):
                    sess.execute(stmt)
                ran.append(mig)
        finally:
            _record(sess, target.keyspace, ran)
    return [m.name for m in ran]


def _tracking_exists(sess: Any, keyspace: str) -> bool:
    row = sess.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, TRACKING_TABLE),
    ).one()
    return row is not None


def _recorded(sess: Any, keyspace: str) -> dict[int, tuple[str, str]]:
    if not _tracking_exists(sess, keyspace):
        return {}
    rows = sess.execute(f"SELECT version, name, checksum FROM {keyspace}.{TRACKING_TABLE}")
    return {r.version: (r.name, r.checksum) for r in rows}


def _record(sess: Any, keyspace: str, ran: list[CqlMigration]) -> None:
    if not ran or not _tracking_exists(sess, keyspace):
        return
    now = datetime.now(UTC)
    for mig in ran:
        # A lightweight transaction: a concurrent bootstrap cannot record a file twice.
        sess.execute(
            f"INSERT INTO {keyspace}.{TRACKING_TABLE} (version, name, checksum, applied_at) "
            "VALUES (%s, %s, %s, %s) IF NOT EXISTS",
            (mig.version, mig.name, mig.checksum, now),
        )
