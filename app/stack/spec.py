"""ClusterSpec: the single source of configuration for one Temporal cluster.

The same model renders the temporal-server config that `haul stack` boots, the values of the
official Temporal Helm chart that infra/ deploys, the namespace and search-attribute setup that
both apply, and the dynamic config file. Renderers are pure functions over the model and return
plain dicts; `dump_yaml` and `dump_server_config` turn them into text.

Secrets never appear in rendered output. Locally the server reads the database password from an
environment variable through its config templating (`# enable-template` as the first line of the
file, then `{{ env "VAR" }}`); in Kubernetes the chart reads it from an existing secret.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    Tag,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from app import versions

Environment = Literal["dev", "staging", "prod"]
Consistency = Literal["LOCAL_QUORUM", "QUORUM", "LOCAL_ONE", "ONE", "EACH_QUORUM", "ALL"]
SerialConsistency = Literal["LOCAL_SERIAL", "SERIAL"]

LOOPBACK = "127.0.0.1"
DEFAULT_PASSWORD_ENV = "TEMPORAL_DB_PASSWORD"
DEFAULT_SECRET_KEY = "password"
DEV_SHARDS = 4

_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_ENV_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DYNCONFIG_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9_]+)+$")
_KEYSPACE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
_DATACENTER_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
# Replication per datacenter that production CQL stores need (LOCAL_QUORUM survives a node).
PROD_MIN_RF = 3


def _matching(pattern: re.Pattern[str], value: str, what: str, not_what: str) -> str:
    """`value` when it matches `pattern`; otherwise an error naming it: "<what> '<value>' is
    not <not_what>" (which says what to give instead)."""
    if not pattern.match(value):
        raise ValueError(f"{what} {value!r} is not {not_what}")
    return value


class SpecError(ValueError):
    """A ClusterSpec that must not be booted or deployed, or a request that conflicts with a
    live cluster. The message names the input, what was wrong, and what to do."""


class _Model(BaseModel):
    # Fields are snake_case in Python and accept camelCase too (as stack files write them).
    # Errors never echo the input: a mistaken password must not reach a log.
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        frozen=True,
        alias_generator=to_camel,
        hide_input_in_errors=True,
    )


_SECRET_FLAT_KEYS = {
    "existing_secret": "existing_secret",
    "existingSecret": "existing_secret",
    "secret_key": "secret_key",
    "secretKey": "secret_key",
    "password_env": "env_var",
    "passwordEnv": "env_var",
}


def _password_ref(data: Any, label: str) -> Any:
    """Accept the Helm-style flat keys (existingSecret, secretKey, passwordEnv) on a store and
    refuse a password given as a value."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    password = data.get("password")
    if isinstance(password, str):
        raise ValueError(
            f"{label} password is given as a value; give a reference instead: existing_secret "
            "and secret_key (the Kubernetes secret the chart reads) and/or password_env (the "
            "environment variable the local server reads), never the password itself"
        )
    flat = {_SECRET_FLAT_KEYS[k]: data.pop(k) for k in list(data) if k in _SECRET_FLAT_KEYS}
    if flat:
        ref = dict(password) if isinstance(password, dict) else {}
        if isinstance(password, SecretRef):
            ref = password.model_dump()
        ref.update(flat)
        data["password"] = ref
    return data


# --------------------------------------------------------------------------------------------
# Stores
# --------------------------------------------------------------------------------------------


class SecretRef(_Model):
    """Where a database password comes from. It is never a value, only a reference.

    `env_var` is read by the locally booted server at start (through config templating);
    `existing_secret`/`secret_key` name the Kubernetes secret the Helm chart mounts.
    """

    env_var: str = DEFAULT_PASSWORD_ENV
    existing_secret: str | None = None
    secret_key: str = DEFAULT_SECRET_KEY

    @field_validator("env_var")
    @classmethod
    def _env_var_name(cls, value: str) -> str:
        return _matching(
            _ENV_VAR_RE,
            value,
            "password env_var",
            "an environment variable name; give a name such as TEMPORAL_DB_PASSWORD, never "
            "the password itself",
        )


class TLSSettings(_Model):
    """TLS from the server to its database (RDS forces SSL from Postgres 15)."""

    enabled: bool = False
    ca_file: str | None = None
    enable_host_verification: bool = False
    server_name: str | None = None
    # The server's client certificate, for a database that requires one (Scylla's
    # client_encryption_options.require_client_auth).
    cert_file: str | None = None
    key_file: str | None = None

    @model_validator(mode="after")
    def _coherent(self) -> TLSSettings:
        if not self.enabled and (
            self.enable_host_verification or self.ca_file or self.cert_file or self.key_file
        ):
            raise ValueError(
                "tls.enable_host_verification, tls.ca_file or a client certificate is set while "
                "tls.enabled is false; set tls.enabled: true (they all need TLS)"
            )
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError(
                "tls.cert_file and tls.key_file go together (the client certificate and its "
                "key); give both or neither"
            )
        return self

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "enabled": self.enabled,
            "enableHostVerification": self.enable_host_verification,
        }
        if self.ca_file:
            out["caFile"] = self.ca_file
        if self.server_name:
            out["serverName"] = self.server_name
        if self.cert_file and self.key_file:
            out["certFile"], out["keyFile"] = self.cert_file, self.key_file
        return out


def duration(value: timedelta) -> str:
    """Go duration string for a timedelta ("1h", "90s")."""
    seconds = int(value.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


class PostgresStore(_Model):
    """A Postgres database used through the server's `postgres12` SQL plugin."""

    kind: Literal["postgres"] = "postgres"
    host: str = LOOPBACK
    port: int = Field(default=5432, ge=1, le=65535)
    user: str = "temporal"
    database: str = "temporal"
    password: SecretRef = SecretRef()
    tls: TLSSettings = TLSSettings()
    max_conns: int = Field(default=20, ge=1)
    max_idle_conns: int = Field(default=20, ge=0)
    max_conn_lifetime: timedelta = timedelta(hours=1)
    # Helm-only: the chart's schema job creates the database and applies/updates the schema.
    create_database: bool = True
    manage_schema: bool = True

    @model_validator(mode="before")
    @classmethod
    def _secret(cls, data: Any) -> Any:
        return _password_ref(data, "postgres store")

    @model_validator(mode="after")
    def _pool(self) -> PostgresStore:
        if self.max_idle_conns > self.max_conns:
            raise ValueError(
                f"postgres store {self.database!r}: max_idle_conns {self.max_idle_conns} is above "
                f"max_conns {self.max_conns}; lower max_idle_conns to at most max_conns"
            )
        return self

    @property
    def connect_addr(self) -> str:
        return f"{self.host}:{self.port}"


class CassandraStore(_Model):
    """A CQL store: Apache Cassandra locally, ScyllaDB in production."""

    kind: Literal["cassandra", "scylla"] = "cassandra"
    hosts: list[str] = Field(default_factory=lambda: [LOOPBACK], min_length=1)
    port: int = Field(default=9042, ge=1, le=65535)
    datacenter: str = "datacenter1"
    keyspace: str = "temporal"
    # Replication factor per datacenter (NetworkTopologyStrategy). Empty means RF 1 in the
    # store's own datacenter for dev and RF 3 elsewhere.
    replication: dict[str, int] = Field(default_factory=dict)
    consistency: Consistency = "LOCAL_QUORUM"
    serial_consistency: SerialConsistency = "LOCAL_SERIAL"
    user: str | None = None
    password: SecretRef | None = None
    tls: TLSSettings = TLSSettings()
    max_conns: int = Field(default=2, ge=1)
    # Helm-only. The chart's keyspace creation cannot turn tablets off (Temporal uses LWT), so
    # the keyspace comes from migrations/scylla and createDatabase stays false.
    create_database: bool = False
    manage_schema: bool = True

    @model_validator(mode="before")
    @classmethod
    def _secret(cls, data: Any) -> Any:
        return _password_ref(data, "cassandra/scylla store")

    @field_validator("keyspace")
    @classmethod
    def _keyspace(cls, value: str) -> str:
        return _matching(
            _KEYSPACE_RE,
            value,
            "keyspace",
            "a valid CQL name; use letters, digits and '_', starting with a letter, at most "
            "48 characters",
        )

    @field_validator("replication")
    @classmethod
    def _rf(cls, value: dict[str, int]) -> dict[str, int]:
        for dc, rf in value.items():
            if not _DATACENTER_RE.match(dc):
                raise ValueError(
                    f"replication names datacenter {dc!r}; use letters, digits, '.', '_' or '-'"
                )
            if rf < 1:
                raise ValueError(
                    f"replication factor for datacenter {dc!r} is {rf}; give 1 or more (3 in prod)"
                )
        return value

    @model_validator(mode="after")
    def _checks(self) -> CassandraStore:
        if self.create_database:
            raise ValueError(
                f"{self.kind} store keyspace {self.keyspace!r}: create_database is true, but the "
                "chart creates keyspaces without disabling tablets, which breaks Temporal's LWT; "
                "set create_database: false and bootstrap the keyspace from migrations/scylla"
            )
        if self.replication and self.datacenter not in self.replication:
            raise ValueError(
                f"{self.kind} store: datacenter {self.datacenter!r} has no replication factor in "
                f"replication {self.replication}; add it"
            )
        return self

    def replication_for(self, environment: Environment) -> dict[str, int]:
        if self.replication:
            return dict(self.replication)
        return {self.datacenter: 1 if environment == "dev" else 3}


def _store_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        kind = value.get("kind", "postgres")
    else:
        kind = getattr(value, "kind", None)
    if kind in ("cassandra", "scylla"):
        return "cql"
    return kind if isinstance(kind, str) else None


# A store without `kind` is Postgres; `kind: cassandra|scylla` is a CQL store.
Store = Annotated[
    Annotated[PostgresStore, Tag("postgres")] | Annotated[CassandraStore, Tag("cql")],
    Discriminator(_store_tag),
]


# --------------------------------------------------------------------------------------------
# Namespaces and dynamic config
# --------------------------------------------------------------------------------------------


class SearchAttributeType(StrEnum):
    """Custom search attribute types, named as Temporal names them."""

    Text = "Text"
    Keyword = "Keyword"
    Int = "Int"
    Double = "Double"
    Bool = "Bool"
    Datetime = "Datetime"
    KeywordList = "KeywordList"

    @property
    def indexed_value_type(self) -> str:
        """The name in temporalio.api.enums.v1.IndexedValueType."""
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", self.value).upper()
        return f"INDEXED_VALUE_TYPE_{snake}"


_ALLOWED_SA = ", ".join(t.value for t in SearchAttributeType)


class NamespaceSpec(_Model):
    name: str
    retention: timedelta = timedelta(days=3)
    description: str = ""
    search_attributes: dict[str, SearchAttributeType] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value or len(value) > 255 or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", value):
            raise ValueError(
                f"namespace name {value!r} is not valid; use letters, digits, '.', '_' or '-'"
            )
        return value

    @field_validator("retention", mode="before")
    @classmethod
    def _retention_days(cls, value: Any) -> Any:
        # An int or float is a number of days; a timedelta or ISO/pydantic duration passes on.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return timedelta(days=value)
        return value

    @field_validator("search_attributes", mode="before")
    @classmethod
    def _sa_types(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for attr, typ in value.items():
            raw = typ.value if isinstance(typ, SearchAttributeType) else typ
            if raw not in SearchAttributeType.__members__:
                raise ValueError(
                    f"search attribute {attr!r} has unknown type {raw!r}; use one of {_ALLOWED_SA}"
                )
        return value

    @property
    def retention_seconds(self) -> int:
        return int(self.retention.total_seconds())


class ConstrainedValue(_Model):
    """One entry of a dynamic config key: a value, optionally limited by constraints
    (namespace, taskQueueName, taskType, ...)."""

    value: Any
    constraints: dict[str, Any] = Field(default_factory=dict)


class DynamicConfig(RootModel[dict[str, list[ConstrainedValue]]]):
    """Dynamic config keys such as `frontend.namespaceRPS` or
    `matching.numTaskqueueReadPartitions`. A plain value means one unconstrained entry."""

    root: dict[str, list[ConstrainedValue]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _wrap(cls, data: Any) -> Any:
        if isinstance(data, DynamicConfig):
            return data.root
        if not isinstance(data, dict):
            return data
        out: dict[str, Any] = {}
        for key, value in data.items():
            if not isinstance(key, str) or not _DYNCONFIG_KEY_RE.match(key):
                raise ValueError(
                    f"dynamic config key {key!r} is not a dotted server key; "
                    "use names such as 'frontend.namespaceRPS' or 'limit.maxIDLength'"
                )
            if isinstance(value, list) and all(
                isinstance(v, dict | ConstrainedValue) for v in value
            ):
                out[key] = value
            else:
                out[key] = [{"value": value}]
        return out

    def __getitem__(self, key: str) -> list[ConstrainedValue]:
        return self.root[key]

    def __contains__(self, key: object) -> bool:
        return key in self.root

    def keys(self) -> list[str]:
        return list(self.root)

    def render(self) -> dict[str, list[dict[str, Any]]]:
        return {
            key: [{"value": e.value, "constraints": dict(e.constraints)} for e in entries]
            for key, entries in sorted(self.root.items())
        }


# --------------------------------------------------------------------------------------------
# ClusterSpec
# --------------------------------------------------------------------------------------------


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


class ClusterSpec(_Model):
    """One Temporal cluster: what `haul stack` boots and what infra/ deploys."""

    name: str
    environment: Environment = "dev"
    server_version: str = versions.TEMPORAL_SERVER
    num_history_shards: int = Field(
        default=DEV_SHARDS,
        validation_alias=AliasChoices("num_history_shards", "numHistoryShards"),
        serialization_alias="numHistoryShards",
        ge=1,
    )
    persistence: Store = Field(default_factory=lambda: PostgresStore())
    visibility: PostgresStore = Field(
        default_factory=lambda: PostgresStore(database="temporal_visibility")
    )
    namespaces: list[NamespaceSpec] = Field(default_factory=list)
    dynamic_config: DynamicConfig = Field(default_factory=DynamicConfig)
    log_level: Literal["debug", "info", "warn", "error"] = "info"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _matching(
            _NAME_RE,
            value,
            "cluster name",
            "valid; use lower-case letters, digits and '-', starting and ending with a letter "
            "or digit (it becomes a Kubernetes name)",
        )

    @field_validator("server_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.match(r"^\d+\.\d+\.\d+$", value):
            raise ValueError(
                f"server_version {value!r} is not a release version such as "
                f"{versions.TEMPORAL_SERVER!r}; pins live in app/versions.py"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _before(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        vis = data.get("visibility")
        kind = None
        if isinstance(vis, dict):
            kind = vis.get("kind")
        elif isinstance(vis, CassandraStore):
            kind = vis.kind
        if kind in ("cassandra", "scylla"):
            raise ValueError(
                f"visibility store is {kind}: Cassandra and ScyllaDB cannot hold visibility "
                "since Temporal server 1.24; put visibility on Postgres (SQL visibility), "
                "e.g. a PostgresStore with database 'temporal_visibility'"
            )
        env = data.get("environment", "dev")
        if env != "dev" and "num_history_shards" not in data and "numHistoryShards" not in data:
            raise ValueError(
                f"numHistoryShards is not set for {env} cluster {data.get('name')!r}; it can "
                "never change after the first deploy, so choose it explicitly (e.g. 512)"
            )
        return data

    @model_validator(mode="after")
    def _policy(self) -> ClusterSpec:
        n = self.num_history_shards
        if not _is_power_of_two(n):
            lower = 1 << (n.bit_length() - 1)
            raise ValueError(
                f"numHistoryShards {n} is not a power of two; our policy requires one "
                f"(e.g. {lower} or {lower * 2}). It can never change after the first deploy"
            )
        if self.environment == "prod":
            for role, store in (("persistence", self.persistence), ("visibility", self.visibility)):
                label = f"{role} store ({store.kind})"
                if not store.tls.enabled:
                    raise ValueError(
                        f"{label} has TLS off in production cluster {self.name!r}; set "
                        "tls.enabled: true with enable_host_verification and the CA bundle "
                        "as tls.ca_file (never sslmode=disable in production)"
                    )
                if isinstance(store, PostgresStore) and not store.tls.enable_host_verification:
                    raise ValueError(
                        f"{label} has TLS host verification off in production cluster "
                        f"{self.name!r}; set tls.enable_host_verification: true and give the "
                        "RDS CA bundle as tls.ca_file"
                    )
            if isinstance(self.persistence, CassandraStore):
                store = self.persistence
                if not store.tls.cert_file:
                    raise ValueError(
                        f"persistence store ({store.kind}) has no client certificate in "
                        f"production cluster {self.name!r}; Scylla requires one "
                        "(require_client_auth), so any pod that reaches CQL is not a client: "
                        "set tls.cert_file and tls.key_file"
                    )
                rfs = store.replication_for("prod")
                low = {dc: rf for dc, rf in rfs.items() if rf < PROD_MIN_RF}
                if low:
                    raise ValueError(
                        f"persistence store ({store.kind}) keyspace {store.keyspace!r} has "
                        f"replication {low} in production cluster {self.name!r}; give every "
                        f"datacenter a replication factor of at least {PROD_MIN_RF}"
                    )
            for ns in self.namespaces:
                if ns.retention < timedelta(days=1):
                    raise ValueError(
                        f"namespace {ns.name!r} has retention {ns.retention_seconds}s (under 1 "
                        f"day) in production cluster {self.name!r}; set retention to at least "
                        "1 day (e.g. 7 days) so closed workflows can be inspected and redriven"
                    )
        seen: set[str] = set()
        for ns in self.namespaces:
            if ns.name in seen:
                raise ValueError(f"namespace {ns.name!r} is listed twice; list it once")
            seen.add(ns.name)
        return self

    # ---- constructors ------------------------------------------------------------------

    @classmethod
    def local(
        cls,
        name: str,
        backend: Literal["postgres", "cassandra"] = "postgres",
        *,
        postgres_port: int = 5432,
        postgres_user: str = "postgres",
        password_env: str = DEFAULT_PASSWORD_ENV,
        cassandra_port: int = 9042,
        datacenter: str = "datacenter1",
        num_history_shards: int = DEV_SHARDS,
        tls: TLSSettings | None = None,
        cql_tls: TLSSettings | None = None,
        namespaces: list[NamespaceSpec] | None = None,
        dynamic_config: dict[str, Any] | None = None,
    ) -> ClusterSpec:
        """A dev cluster on loopback, as `haul stack up --backend postgres|cassandra` boots it.

        Postgres holds visibility in both cases (and the default store for `postgres`); the
        schema tools create the databases locally, so the Helm-only keys keep their defaults.
        `tls` is for the Postgres stores, `cql_tls` (with its client certificate) for the CQL one.
        """
        pg_tls = tls or TLSSettings()
        secret = SecretRef(env_var=password_env)
        visibility = PostgresStore(
            port=postgres_port,
            user=postgres_user,
            database="temporal_visibility",
            password=secret,
            tls=pg_tls,
            max_conns=10,
            max_idle_conns=10,
        )
        persistence: PostgresStore | CassandraStore
        if backend == "postgres":
            persistence = PostgresStore(
                port=postgres_port,
                user=postgres_user,
                password=secret,
                tls=pg_tls,
                max_conns=20,
                max_idle_conns=20,
            )
        elif backend == "cassandra":
            persistence = CassandraStore(
                kind="cassandra",
                port=cassandra_port,
                datacenter=datacenter,
                replication={datacenter: 1},
                tls=cql_tls or TLSSettings(),
            )
        else:
            raise SpecError(
                f"backend {backend!r} is not a ClusterSpec backend; use 'postgres' or 'cassandra' "
                "(the 'dev' backend runs the embedded dev server and needs no ClusterSpec store)"
            )
        dyn: dict[str, Any] = dict(LOCAL_DYNAMIC_CONFIG)
        dyn.update(dynamic_config or {})
        return cls(
            name=name,
            environment="dev",
            num_history_shards=num_history_shards,
            persistence=persistence,
            visibility=visibility,
            namespaces=default_namespaces() if namespaces is None else namespaces,
            dynamic_config=DynamicConfig.model_validate(dyn),
        )

    def namespace(self, name: str) -> NamespaceSpec:
        for ns in self.namespaces:
            if ns.name == name:
                return ns
        raise KeyError(f"namespace {name!r} is not in cluster {self.name!r}")


# Search attributes the app relies on (workflow ownership, deterministic IDs, carrier audits).
APP_SEARCH_ATTRIBUTES: dict[str, SearchAttributeType] = {
    "Team": SearchAttributeType.Keyword,
    "TaskIdentifier": SearchAttributeType.Keyword,
    "Carrier": SearchAttributeType.Keyword,
}

# Dev-only dynamic config: search attributes are usable at once after registration, as on the
# dev server.
LOCAL_DYNAMIC_CONFIG: dict[str, Any] = {
    "system.forceSearchAttributesCacheRefreshOnRead": True,
    "limit.maxIDLength": 1000,
}


def default_namespaces() -> list[NamespaceSpec]:
    """The namespaces every haul cluster has.

    `default` exists because tools and the SDK fall back to it (temporal-server does not create
    it); `haul` holds the application's workflows. Both carry the app's search attributes.
    """
    return [
        NamespaceSpec(
            name="default",
            retention=timedelta(days=3),
            description="Default namespace, for tools and ad hoc runs",
            search_attributes=dict(APP_SEARCH_ATTRIBUTES),
        ),
        NamespaceSpec(
            name="haul",
            retention=timedelta(days=7),
            description="haul application workflows",
            search_attributes=dict(APP_SEARCH_ATTRIBUTES),
        ),
    ]


def check_shard_count(requested: int, live: int) -> None:
    """Refuse a shard count that differs from the live cluster's (GetClusterInfo).

    The server ignores a changed numHistoryShards with only a warning, so haul refuses it here.
    """
    if requested != live:
        raise SpecError(
            f"numHistoryShards {requested} was requested but the live cluster has {live} "
            "(from GetClusterInfo); the shard count can never change after the first deploy. "
            f"Keep {live}, or create a new cluster with {requested} and migrate to it"
        )


def load_spec(path: Path) -> ClusterSpec:
    """A ClusterSpec from a YAML file, such as the one `spec_render.render_spec_file` writes
    (infra mounts it into the Scylla bootstrap Job)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(
            f"cluster spec file {path} cannot be read ({exc}); give a ClusterSpec YAML file"
        ) from None
    return ClusterSpec.model_validate(data)
