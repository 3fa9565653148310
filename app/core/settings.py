"""Settings from HAUL_* environment variables: one pydantic-settings model per process kind.

- `ClientSettings`: any process that connects to Temporal (the transport of its client);
- `AppSettings`: what any process that touches the app's data needs (database, blob store);
- `Settings`: a worker process (`haul worker`), on top of AppSettings;
- `StackSettings`: the local stack (`haul stack`, `haul run`): state and cache homes, ports;
- `CliSettings`: the `haul` command itself;
- `ApiSettings`: the failure-inbox service (`haul api`), on top of AppSettings.

The parcel pipeline's HAUL_PARCEL_* live with its model (`app/domains/parcel/models.py`) and
the load test's HAUL_LT_* with the load test. README's "Settings" table lists every variable.
A bad value fails with `SettingsError`, which names the variable and the value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PORT_BASE = 17000
# Final look-up answers a router keeps during a migration (app/platform/lookup_cache.py).
ROUTER_CACHE_SIZE = 50_000


class SettingsError(ValueError):
    """An environment variable holds a value its setting cannot take."""


class EnvSettings(BaseSettings):
    """Base of every HAUL_* model: empty variables count as unset, errors name the variable."""

    model_config = SettingsConfigDict(
        env_prefix="HAUL_", env_ignore_empty=True, extra="ignore", validate_by_name=True
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise SettingsError(self._explain(err)) from None

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable a field is read from."""
        alias = cls.model_fields[field].validation_alias
        if isinstance(alias, str):
            return alias
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()

    @classmethod
    def _explain(cls, err: ValidationError) -> str:
        problems = []
        for item in err.errors():
            field = str(item["loc"][0]) if item["loc"] else ""
            name = cls.env_name(field) if field in cls.model_fields else field
            secret = field in cls.model_fields and cls.model_fields[field].annotation in (
                SecretStr,
                SecretStr | None,
            )
            if name in os.environ and not secret:
                problems.append(f"{name}={os.environ[name]!r}: {item['msg']}")
            else:
                problems.append(f"{field}: {item['msg']}")
        return "bad setting: " + "; ".join(problems)


class ClientSettings(EnvSettings):
    """How every haul client talks to its cluster, beyond what its envconfig profile says."""

    # gRPC compression of the client's requests and responses. The Python SDK gzips by
    # default (the Go SDK does not); "none" saves the zlib work in the worker, the starter and
    # the server on a loopback or in-cluster link (loadtest/PROFILE.md). Not the default until
    # a measurement on a quiet host shows the gain the profile predicts.
    grpc_compression: Literal["none", "gzip"] = "gzip"


class AppSettings(EnvSettings):
    """The app's stores, for any process that reads or writes them."""

    # The app database (Postgres DSN).
    database_url: str = ""
    # The claim-check blob store: a directory, or s3://bucket/prefix.
    blob_dir: str = ""
    # Route through the cluster-migration state in the app database (app/platform/router.py).
    migration: bool = False
    # Workflow IDs whose final look-up answer on the old cluster a router keeps (0: none).
    router_cache_size: int = Field(default=ROUTER_CACHE_SIZE, ge=0)


class Settings(AppSettings):
    """What a worker process needs beyond its Temporal connection."""

    task_queues: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_concurrent_activities: int = Field(default=100, ge=1)
    max_concurrent_workflow_tasks: int = Field(default=100, ge=1)
    graceful_shutdown_seconds: float = Field(default=30.0, ge=0)
    # Open polls per task queue for workflow and activity tasks; the SDK's default is 5 each.
    workflow_task_pollers: int = Field(default=5, ge=2)
    activity_task_pollers: int = Field(default=5, ge=1)
    # Run an activity a workflow schedules on this worker at once, without a poll round trip.
    eager_activities: bool = True
    # The event loop the worker runs on: uvloop (libuv) or the standard library's.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # The workflow sandbox: default, all or strict (see app/platform/sandbox.py).
    workflow_sandbox: Literal["default", "all", "strict"] = "default"
    health_port: int = Field(
        default=9090, ge=0, le=65535, validation_alias="HAUL_WORKER_HEALTH_PORT"
    )
    health_host: str = Field(default="127.0.0.1", validation_alias="HAUL_WORKER_HEALTH_HOST")

    @field_validator("task_queues", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class StackSettings(EnvSettings):
    """Where local clusters keep state and which ports they take."""

    # Cluster state (registry, data, temporal.toml); default: the XDG state dir.
    home: Path | None = None
    # Built binaries and jars; default: the XDG cache dir.
    cache: Path | None = None
    # First port of the first cluster's block.
    port_base: int = Field(default=PORT_BASE, ge=1024, le=65000)
    # bin/ of a PostgreSQL built with OpenSSL, for --tls clusters.
    postgres_ssl_bindir: Path | None = None

    def state_home(self) -> Path:
        if self.home is not None:
            return self.home
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "haul"

    def cache_home(self) -> Path:
        if self.cache is not None:
            return self.cache
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "haul"


class CliSettings(EnvSettings):
    """The `haul` command's own switches."""

    # Show tracebacks instead of one-line errors.
    debug: bool = False
    # `haul run` leaves the cluster running after Ctrl-C.
    keep_cluster: bool = False


class ApiSettings(AppSettings):
    """The failure-inbox service: who may change things, and how often it polls.

    The token guards every mutating endpoint; with neither the variable nor the file set, those
    endpoints refuse every call rather than open up. The file is the mounted Kubernetes Secret.
    """

    api_token: SecretStr | None = None
    api_token_file: Path | None = None
    # Reads (pages and GET endpoints) need the token too.
    api_read_auth: bool = False
    # The Temporal UI that workflow links point at; default: the local cluster's, if any.
    temporal_ui_url: str = ""
    # Seconds between failure-poller passes (and redrive follow-ups) inside `haul api`.
    api_poll_seconds: float = Field(default=10.0, gt=0)
    # Bulk redrive: the highest rate a caller may ask for, and the most failures per call.
    api_max_redrive_rate: float = Field(default=20.0, gt=0)
    api_max_bulk: int = Field(default=1000, ge=1)

    def token(self) -> str | None:
        """The API token from HAUL_API_TOKEN, else from HAUL_API_TOKEN_FILE; None: unset."""
        if self.api_token is not None and self.api_token.get_secret_value().strip():
            return self.api_token.get_secret_value().strip()
        if self.api_token_file is None:
            return None
        try:
            value = self.api_token_file.read_text().strip()
        except OSError as err:
            raise SettingsError(
                f"HAUL_API_TOKEN_FILE={str(self.api_token_file)!r}: cannot read it "
                f"({err.strerror}); mount the Secret there or unset the variable"
            ) from None
        return value or None
