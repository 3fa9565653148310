"""The registry of named local clusters: their processes, port blocks and data directories.

Several clusters run at once (a Postgres one and a Cassandra one during a migration test), so
each gets its own block of ports and its own directory, and `down` stops only its own pids.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, Field

from app.core.files import locked, write_atomic
from app.core.procs import port_free
from app.core.settings import StackSettings

BLOCK_SIZE = 20
MAX_BLOCKS = 100

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
}


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
    namespaces: list[str] = Field(default_factory=list)
    app_database: str = "haul"
    postgres_user: str = "haul"
    postgres_password: str = ""
    num_history_shards: int = 0
    tls: bool = False

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
        """Where `--tls` keeps the cluster's generated CA and server certificate."""
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

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise registry changes across processes (port allocation must not race)."""
        with locked(self.dir / ".lock"):
            yield

    @property
    def profile_file(self) -> Path:
        """The temporal.toml that holds one envconfig profile per local cluster."""
        return self.home / "temporal.toml"

    def _file(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def get(self, name: str) -> ClusterRecord | None:
        path = self._file(name)
        if not path.exists():
            return None
        return ClusterRecord.model_validate_json(path.read_text())

    def all(self) -> list[ClusterRecord]:
        if not self.dir.exists():
            return []
        return [
            ClusterRecord.model_validate_json(p.read_text())
            for p in sorted(self.dir.glob("*.json"))
        ]

    def put(self, record: ClusterRecord) -> None:
        write_atomic(self._file(record.name), json.dumps(record.model_dump(), indent=2))

    def remove(self, name: str) -> None:
        self._file(name).unlink(missing_ok=True)

    def allocate_block(self, requested: int | None = None) -> int:
        """A port base no other registered cluster uses (call under `locked`)."""
        used = {r.port_base for r in self.all()}
        if requested is not None:
            if requested in used:
                raise ValueError(f"port base {requested} is already used by another cluster")
            return requested
        first = StackSettings().port_base
        for i in range(MAX_BLOCKS):
            base = first + i * BLOCK_SIZE
            # Skip blocks another registry (another HAUL_HOME) is already listening on.
            if base not in used and all(port_free(base + off) for off in PORT_OFFSETS.values()):
                return base
        raise RuntimeError(f"all {MAX_BLOCKS} port blocks are in use; run `haul stack down`")
