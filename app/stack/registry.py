"""The registry of named local clusters: their processes, port blocks and data directories.

Several clusters run at once (a Postgres one and a Cassandra one during a migration test), so
each gets its own block of ports and its own directory, and `down` stops only its own pids.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator

from app.core.files import locked, private_dir, write_private
from app.core.procs import ProcStamp, holds, port_free, stamp
from app.core.settings import StackSettings

log = logging.getLogger(__name__)

BLOCK_SIZE = 20
MAX_BLOCKS = 100
# temporal-server keeps cluster membership ports in a smallint column of its Postgres and
# Cassandra stores, so every port of such a cluster's block must stay below this.
SMALLINT_PORTS = 32768
SMALLINT_BACKENDS = ("postgres", "cassandra")
# A name becomes a file name, a directory, a temporal.toml table and a Cassandra cluster
# name: lowercase letters, digits and inner hyphens only.
NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")

# Offsets of each role inside a cluster's port block.
PORT_OFFSETS: dict[str, int] = {
    "frontend": 0,
    "frontend_http": 1,
    "ui": 2,
    "metrics": 3,
    "postgres": 4,
    "history": 5,
    "matching": 6,
    "worker": 7,
    "frontend_membership": 8,
    "history_membership": 9,
    "matching_membership": 10,
    "worker_membership": 11,
    "cassandra_cql": 12,
    "cassandra_storage": 13,
    "worker_health": 14,
    "internal_frontend": 15,
    "internal_frontend_membership": 16,
    "cassandra_jmx": 17,
    # `haul api --cluster N` serves the failure inbox here.
    "api": 18,
}


class ClusterNameError(ValueError):
    """A cluster name that is not safe to use as a file name and profile name."""


class PortBlockError(ValueError):
    """A port block that the cluster's backend cannot use."""


def check_name(name: str) -> str:
    """The name itself when it is a safe cluster name; else a ClusterNameError saying why."""
    if not NAME_PATTERN.fullmatch(name):
        raise ClusterNameError(
            f"cluster name {name!r} is not allowed: use 1 to 32 lowercase letters, digits and "
            "'-', starting and ending with a letter or digit (for example `dev-2`)"
        )
    return name


def check_block(base: int, backend: str) -> int:
    """The base itself when the block fits the backend; else a PortBlockError saying why."""
    last = base + BLOCK_SIZE - 1
    if base < 1024 or last > 65535:
        raise PortBlockError(
            f"port block {base}-{last} is outside 1024-65535; pass a --port-base in that range"
        )
    if backend in SMALLINT_BACKENDS and last >= SMALLINT_PORTS:
        raise PortBlockError(
            f"port block {base}-{last} reaches {SMALLINT_PORTS} or above, but temporal-server "
            f"stores membership ports in a smallint, so a {backend} cluster needs every port "
            f"below {SMALLINT_PORTS}; pass --port-base {SMALLINT_PORTS - BLOCK_SIZE} or lower "
            "(or set HAUL_PORT_BASE lower)"
        )
    return base


def state_home() -> Path:
    """Where clusters keep their state: $HAUL_HOME, or the XDG state dir."""
    return StackSettings().state_home()


def cache_home() -> Path:
    """Where built binaries and jars are cached: $HAUL_CACHE, or the XDG cache dir."""
    return StackSettings().cache_home()


class ClusterRecord(BaseModel):
    """One named local cluster, as `haul stack status` reports it."""

    name: str
    backend: str
    port_base: int
    data_dir: str
    pids: dict[str, int] = Field(default_factory=dict)
    # Beside each pid: the start time and executable it had when spawned, so a pid that the
    # kernel has since given to another process is never taken for ours.
    stamps: dict[str, ProcStamp] = Field(default_factory=dict)
    namespaces: list[str] = Field(default_factory=list)
    app_database: str = "haul"
    postgres_user: str = "haul"
    postgres_password: str = ""
    num_history_shards: int = 0
    # tls: Postgres, Cassandra and the frontend serve TLS from the cluster's CA (Cassandra also
    # requires a client certificate, as Scylla does). mtls (implies tls): the frontend also
    # requires a client certificate and a JWT (the server's authorizer).
    tls: bool = False
    mtls: bool = False

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_name(value)

    def track(self, role: str, pid: int) -> None:
        """Record a just-spawned process under role, with its identity."""
        self.pids[role] = pid
        found = stamp(pid)
        if found is None:  # it already exited: nothing of ours holds the pid
            self.stamps.pop(role, None)
        else:
            self.stamps[role] = found

    def forget(self, role: str) -> None:
        self.pids.pop(role, None)
        self.stamps.pop(role, None)

    def running(self, role: str) -> bool:
        """Whether the process recorded under role still runs (not another on its pid)."""
        pid, expect = self.pids.get(role), self.stamps.get(role)
        return pid is not None and expect is not None and holds(pid, expect)

    def port(self, role: str) -> int:
        return self.port_base + PORT_OFFSETS[role]

    @property
    def frontend(self) -> str:
        return f"127.0.0.1:{self.port('frontend')}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port('ui')}" if self.backend == "dev" else ""

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port('metrics')}/metrics"

    def dsn(self, database: str | None = None, *, masked: bool = False) -> str:
        """The app database DSN; masked hides the password for display."""
        secret = "****" if masked and self.postgres_password else self.postgres_password
        auth = f"{self.postgres_user}:{secret}" if secret else self.postgres_user
        return (
            f"postgresql://{auth}@127.0.0.1:{self.port('postgres')}/{database or self.app_database}"
        )

    # The cluster's directory layout: every file a cluster keeps is named here.

    @property
    def path(self) -> Path:
        return Path(self.data_dir)

    @property
    def blob_dir(self) -> Path:
        """The claim-check blob store of this cluster's workers and clients."""
        return self.path / "blobs"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    def log(self, role: str) -> Path:
        """The log of one process of the cluster (temporal, postgres, worker, schema ...)."""
        return self.logs_dir / f"{role}.log"

    @property
    def tls_dir(self) -> Path:
        """Where `--tls` keeps the cluster's generated CA and certificates (and `--mtls` the
        JWT signing key and JWKS)."""
        return self.path / "tls"

    @property
    def pgdata(self) -> Path:
        return self.path / "pgdata"

    @property
    def config_dir(self) -> Path:
        """The rendered temporal-server config (production-like backends)."""
        return self.path / "config"

    @property
    def cassandra_dir(self) -> Path:
        return self.path / "cassandra"

    @property
    def dev_db(self) -> Path:
        """The dev server's SQLite file."""
        return self.path / "temporal.db"


class Registry:
    """A JSON file per cluster under the state home, guarded by a file lock."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home or state_home()
        self.dir = self.home / "clusters"

    def data_dir(self, name: str) -> Path:
        """The one directory a cluster of this name keeps its data in."""
        return self.dir / check_name(name)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise registry changes across processes (port allocation must not race)."""
        private_dir(self.dir)
        with locked(self.dir / ".lock"):
            yield

    @property
    def profile_file(self) -> Path:
        """The temporal.toml that holds one envconfig profile per local cluster."""
        return self.home / "temporal.toml"

    def _file(self, name: str) -> Path:
        return self.dir / f"{check_name(name)}.json"

    def get(self, name: str) -> ClusterRecord | None:
        path = self._file(name)
        if not path.exists():
            return None
        return ClusterRecord.model_validate_json(path.read_text())

    def all(self) -> list[ClusterRecord]:
        if not self.dir.exists():
            return []
        records = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                records.append(ClusterRecord.model_validate_json(path.read_text()))
            except (OSError, ValidationError) as err:
                # One bad file must not hide the other clusters.
                log.warning("skipping cluster record %s: %s; fix or delete it", path, err)
        return records

    def put(self, record: ClusterRecord) -> None:
        """Save a record, owner-only: it holds the cluster's Postgres superuser password."""
        private_dir(self.dir)
        write_private(self._file(record.name), json.dumps(record.model_dump(), indent=2))

    def remove(self, name: str) -> None:
        self._file(name).unlink(missing_ok=True)

    def allocate_block(self, requested: int | None = None, backend: str = "dev") -> int:
        """A port base no other registered cluster uses and the backend can boot on (call
        under `locked`)."""
        used = {r.port_base for r in self.all()}
        if requested is not None:
            check_block(requested, backend)
            if requested in used:
                raise ValueError(f"port base {requested} is already used by another cluster")
            return requested
        first = StackSettings().port_base
        for i in range(MAX_BLOCKS):
            base = first + i * BLOCK_SIZE
            try:
                check_block(base, backend)
            except PortBlockError as err:
                if i == 0:
                    raise PortBlockError(f"HAUL_PORT_BASE={first}: {err}") from None
                break
            # Skip blocks another registry (another HAUL_HOME) is already listening on.
            if base not in used and all(port_free(base + off) for off in PORT_OFFSETS.values()):
                return base
        raise RuntimeError(
            f"no free port block for a {backend} cluster from {first} on; run `haul stack down`"
        )
