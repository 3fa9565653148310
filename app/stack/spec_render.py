"""Renderers for ClusterSpec: server config, Helm values, namespace setup, dynamic config.

Pure functions: they read a ClusterSpec and return plain dicts. The model (spec.py) never
imports them, so the two import one way.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app import versions
from app.stack import authz
from app.stack.spec import CassandraStore, ClusterSpec, PostgresStore, duration

SQL_PLUGIN = "postgres12"
DEFAULT_STORE = "default"
VISIBILITY_STORE = "visibility"
METRICS_PATH = "/metrics"
ENABLE_TEMPLATE_HEADER = "# enable-template"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ListenConfig(BaseModel):
    """Where a locally booted temporal-server listens: one host (loopback) and a port each.

    `from_base` lays the ports out as a block, so several clusters can run side by side.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    frontend_grpc: int = 7233
    frontend_http: int = 7243
    frontend_membership: int = 6933
    history_grpc: int = 7234
    history_membership: int = 6934
    matching_grpc: int = 7235
    matching_membership: int = 6935
    worker_grpc: int = 7239
    worker_membership: int = 6939
    metrics: int = 9090
    # The internal frontend serves the server's own system workers when the public frontend
    # runs an authorizer (they carry no JWT); None leaves it out.
    internal_frontend_grpc: int | None = None
    internal_frontend_membership: int | None = None
    dynamic_config_path: str = "dynamicconfig.yaml"
    dynamic_config_poll_interval: str = "10s"
    # "opentelemetry" exports the billable-action counter as `action_total`, as the dev server
    # does; "tally" exports it as `action`. The shared action reader accepts both names.
    metrics_framework: Literal["opentelemetry", "tally"] = "opentelemetry"

    @model_validator(mode="after")
    def _distinct(self) -> ListenConfig:
        if not _is_loopback(self.host):
            raise ValueError(
                f"listen host {self.host!r} is not a loopback address; a local cluster listens "
                "on loopback only (127.0.0.1)"
            )
        ports = self.ports()
        seen: dict[int, str] = {}
        for name, port in ports.items():
            if not 1 <= port <= 65535:
                raise ValueError(f"listen port {name}={port} is outside 1..65535")
            if port in seen:
                raise ValueError(
                    f"listen ports {seen[port]} and {name} are both {port}; give each its own port"
                )
            seen[port] = name
        return self

    def ports(self) -> dict[str, int]:
        optional = ("internal_frontend_grpc", "internal_frontend_membership")
        return {
            name: getattr(self, name)
            for name in (*self._core_ports(), *optional)
            if getattr(self, name) is not None
        }

    @staticmethod
    def _core_ports() -> tuple[str, ...]:
        return (
            "frontend_grpc",
            "frontend_http",
            "frontend_membership",
            "history_grpc",
            "history_membership",
            "matching_grpc",
            "matching_membership",
            "worker_grpc",
            "worker_membership",
            "metrics",
        )

    @classmethod
    def from_base(
        cls, base: int, dynamic_config_path: str, host: str = "127.0.0.1", **kw: Any
    ) -> ListenConfig:
        """Ports base+0 .. base+9: frontend gRPC, HTTP, membership; history gRPC, membership;
        matching gRPC, membership; worker gRPC, membership; metrics."""
        names = list(cls._core_ports())
        fields: dict[str, Any] = {name: base + i for i, name in enumerate(names)}
        fields.update(kw, host=host, dynamic_config_path=dynamic_config_path)
        return cls.model_validate(fields)

    @property
    def frontend_address(self) -> str:
        return f"{self.host}:{self.frontend_grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics}{METRICS_PATH}"


class FrontendSecurity(BaseModel):
    """TLS on the public frontend, optionally mutual, and the authorizer that goes with mTLS.

    `require_client_auth` asks every caller for a certificate from `ca_file`; then
    `key_source_uri` (the JWKS) must be set too, since a certificate alone would make every
    holder an admin. The authorizer's system workers use the internal frontend instead.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: str
    key_file: str
    ca_file: str
    server_name: str
    require_client_auth: bool = False
    key_source_uri: str | None = None

    @model_validator(mode="after")
    def _authorized(self) -> FrontendSecurity:
        if self.require_client_auth and not self.key_source_uri:
            raise ValueError(
                "frontend requires client certificates but has no JWT key source: any holder "
                "of a cluster certificate would be an admin; give key_source_uri (the JWKS)"
            )
        return self

    def render_tls(self) -> dict[str, Any]:
        """`global.tls`: the frontend's server side, and how the server's own clients
        (system workers without an internal frontend) verify it."""
        server: dict[str, Any] = {"certFile": self.cert_file, "keyFile": self.key_file}
        if self.require_client_auth:
            server |= {"requireClientAuth": True, "clientCaFiles": [self.ca_file]}
        client = {"serverName": self.server_name, "rootCaFiles": [self.ca_file]}
        return {"frontend": {"server": server, "client": client}}


# --------------------------------------------------------------------------------------------
# temporal-server config
# --------------------------------------------------------------------------------------------


def _env_template(var: str) -> str:
    # Rendered by the server's config templating (sprig); toJson makes any password a valid
    # YAML double-quoted scalar.
    return f'{{{{ env "{var}" | toJson }}}}'


def _sql_datastore(store: PostgresStore) -> dict[str, Any]:

    return {
        "pluginName": SQL_PLUGIN,
        "databaseName": store.database,
        "connectAddr": store.connect_addr,
        "connectProtocol": "tcp",
        "user": store.user,
        "password": _env_template(store.password.env_var),
        "maxConns": store.max_conns,
        "maxIdleConns": store.max_idle_conns,
        "maxConnLifetime": duration(store.max_conn_lifetime),
        "tls": store.tls.render(),
    }


def _cql_datastore(store: CassandraStore) -> dict[str, Any]:
    out: dict[str, Any] = {
        "hosts": ",".join(store.hosts),
        "port": store.port,
        "keyspace": store.keyspace,
        "datacenter": store.datacenter,
        "maxConns": store.max_conns,
        "consistency": {
            "default": {
                "consistency": store.consistency,
                "serialConsistency": store.serial_consistency,
            }
        },
        "tls": store.tls.render(),
    }
    if store.user:
        out["user"] = store.user
    if store.password is not None:
        out["password"] = _env_template(store.password.env_var)
    return out


def _server_datastore(store: PostgresStore | CassandraStore) -> dict[str, Any]:
    if store.kind == "postgres":
        return {"sql": _sql_datastore(store)}  # type: ignore[arg-type]
    return {"cassandra": _cql_datastore(store)}  # type: ignore[arg-type]


def _rpc(host: str, grpc: int, membership: int, http: int | None = None) -> dict[str, Any]:
    rpc: dict[str, Any] = {"grpcPort": grpc, "membershipPort": membership, "bindOnIP": host}
    if http is not None:
        rpc["httpPort"] = http
    return {"rpc": rpc}


def render_server_config(
    spec: ClusterSpec, listen: ListenConfig, frontend: FrontendSecurity | None = None
) -> dict[str, Any]:
    """The temporal-server config (server 1.32 format) for booting `spec` locally; with
    `frontend`, the public frontend serves TLS (and mTLS with the JWT authorizer).

    Passwords are `{{ env "VAR" | toJson }}` templates: write the file with
    `dump_server_config`, which puts `# enable-template` on the first line, and start the
    server with VAR set.
    """
    h = listen.host
    config = _base_server_config(spec, listen)
    if frontend is not None:
        config["global"]["tls"] = frontend.render_tls()
        if frontend.key_source_uri:
            config["global"]["authorization"] = authz.server_authorization(
                frontend.key_source_uri
            )
            if listen.internal_frontend_grpc is None or listen.internal_frontend_membership is None:
                raise ValueError(
                    "an authorizer needs the internal frontend for the server's system workers; "
                    "give internal_frontend_grpc and internal_frontend_membership ports"
                )
            config["services"]["internal-frontend"] = _rpc(
                h, listen.internal_frontend_grpc, listen.internal_frontend_membership
            )
    return config


def _base_server_config(spec: ClusterSpec, listen: ListenConfig) -> dict[str, Any]:
    h = listen.host
    return {
        "log": {"stdout": True, "level": spec.log_level},
        "persistence": {
            "defaultStore": DEFAULT_STORE,
            "visibilityStore": VISIBILITY_STORE,
            "numHistoryShards": spec.num_history_shards,
            "datastores": {
                DEFAULT_STORE: _server_datastore(spec.persistence),
                VISIBILITY_STORE: _server_datastore(spec.visibility),
            },
        },
        "global": {
            "membership": {"maxJoinDuration": "30s", "broadcastAddress": h},
            "metrics": {
                "prometheus": {
                    "framework": listen.metrics_framework,
                    "timerType": "histogram",
                    "listenAddress": f"{h}:{listen.metrics}",
                    "handlerPath": METRICS_PATH,
                }
            },
        },
        "services": {
            "frontend": _rpc(
                h, listen.frontend_grpc, listen.frontend_membership, listen.frontend_http
            ),
            "history": _rpc(h, listen.history_grpc, listen.history_membership),
            "matching": _rpc(h, listen.matching_grpc, listen.matching_membership),
            "worker": _rpc(h, listen.worker_grpc, listen.worker_membership),
        },
        "clusterMetadata": {
            "enableGlobalNamespace": False,
            "failoverVersionIncrement": 10,
            "masterClusterName": spec.name,
            "currentClusterName": spec.name,
            "clusterInformation": {
                spec.name: {
                    "enabled": True,
                    "initialFailoverVersion": 1,
                    "rpcName": "frontend",
                    "rpcAddress": f"{h}:{listen.frontend_grpc}",
                    "httpAddress": f"{h}:{listen.frontend_http}",
                }
            },
        },
        "dcRedirectionPolicy": {"policy": "noop"},
        "archival": {
            "history": {"state": "disabled"},
            "visibility": {"state": "disabled"},
        },
        "namespaceDefaults": {
            "archival": {
                "history": {"state": "disabled"},
                "visibility": {"state": "disabled"},
            }
        },
        "dynamicConfigClient": {
            "filepath": listen.dynamic_config_path,
            "pollInterval": listen.dynamic_config_poll_interval,
        },
    }


def dump_yaml(data: Any) -> str:
    """YAML text for a rendered dict (block style, keys in insertion order)."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=4096)


def render_spec_file(spec: ClusterSpec) -> str:
    """The spec itself as YAML (camelCase keys), which `spec.load_spec` reads back unchanged.

    Passwords are references only, so the file holds no secret.
    """
    return dump_yaml(spec.model_dump(mode="json", by_alias=True))


_TEMPLATE_RE = re.compile(r"""'(\{\{ env "[A-Za-z_][A-Za-z0-9_]*" \| toJson \}\})'""")


def dump_server_config(config: dict[str, Any]) -> str:
    """Server config file text: `# enable-template` first, so the server expands the
    `{{ env ... }}` password references itself and no secret is written to disk."""
    text = _TEMPLATE_RE.sub(r"\1", dump_yaml(config))
    return f"{ENABLE_TEMPLATE_HEADER}\n{text}"


# --------------------------------------------------------------------------------------------
# Dynamic config and namespaces
# --------------------------------------------------------------------------------------------


def render_dynamic_config(spec: ClusterSpec) -> dict[str, list[dict[str, Any]]]:
    """Content of the dynamic config file the server watches (key: [{value, constraints}])."""
    return spec.dynamic_config.render()


class NamespaceRegistration(BaseModel):
    """What to register: RegisterNamespace (retention) then AddSearchAttributes."""

    model_config = ConfigDict(frozen=True)

    name: str
    retention_seconds: int
    description: str = ""
    search_attributes: dict[str, str] = Field(default_factory=dict)


def render_namespace_setup(spec: ClusterSpec) -> list[dict[str, Any]]:
    """Namespace registrations, with search attributes as IndexedValueType enum names
    (e.g. INDEXED_VALUE_TYPE_KEYWORD), for the local stack and the chart's namespace job."""
    return [
        NamespaceRegistration(
            name=ns.name,
            retention_seconds=ns.retention_seconds,
            description=ns.description,
            search_attributes={
                attr: typ.indexed_value_type for attr, typ in sorted(ns.search_attributes.items())
            },
        ).model_dump()
        for ns in spec.namespaces
    ]


# --------------------------------------------------------------------------------------------
# Helm values
# --------------------------------------------------------------------------------------------

# Keys the chart reads and strips before it writes the server config, mapped to the spec field
# each comes from. Everything else in a Helm datastore is the server's own config, rendered by
# the same code as `render_server_config`, so the two cannot drift.
HELM_ONLY_KEYS: dict[str, str] = {
    "existingSecret": "password.existing_secret (default <cluster>-<store>-store)",
    "secretKey": "password.secret_key",
    "createDatabase": "create_database",
    "manageSchema": "manage_schema",
}


def _helm_datastore(
    store: PostgresStore | CassandraStore, cluster: str, label: str
) -> dict[str, Any]:
    driver, body = next(iter(_server_datastore(store).items()))
    # The password is never a value: the chart reads it from existingSecret/secretKey.
    body = {k: v for k, v in body.items() if k != "password"}
    if store.password is not None:
        body["existingSecret"] = store.password.existing_secret or f"{cluster}-{label}-store"
        body["secretKey"] = store.password.secret_key
    body["createDatabase"] = store.create_database
    body["manageSchema"] = store.manage_schema
    return {driver: body}


def _retention_text(seconds: int) -> str:
    # Passed to `temporal operator namespace create --retention` by the chart's namespace job;
    # whole hours are a Go duration every version accepts.
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h" if rest == 0 else f"{seconds}s"


def render_helm_values(spec: ClusterSpec) -> dict[str, Any]:
    """Values for the official Temporal Helm chart, 1.x layout (pinned in app.versions).

    Persistence follows the server's own format under `server.config.persistence.datastores`
    plus the Helm-only keys in HELM_ONLY_KEYS; no password appears. The chart's namespace job
    creates each namespace with its retention; search attributes and descriptions come from
    `render_namespace_setup` / `render_namespace_commands`, which the chart does not apply.
    """
    return {
        "server": {
            "image": {"tag": spec.server_version},
            "config": {
                "logLevel": spec.log_level,
                "persistence": {
                    "defaultStore": DEFAULT_STORE,
                    "visibilityStore": VISIBILITY_STORE,
                    "numHistoryShards": spec.num_history_shards,
                    "datastores": {
                        DEFAULT_STORE: _helm_datastore(spec.persistence, spec.name, DEFAULT_STORE),
                        VISIBILITY_STORE: _helm_datastore(
                            spec.visibility, spec.name, VISIBILITY_STORE
                        ),
                    },
                },
                "namespaces": {
                    "create": bool(spec.namespaces),
                    "namespace": [
                        {"name": ns.name, "retention": _retention_text(ns.retention_seconds)}
                        for ns in spec.namespaces
                    ],
                },
            },
            "dynamicConfig": render_dynamic_config(spec),
        },
        "admintools": {"image": {"tag": versions.TEMPORAL_ADMINTOOLS_IMAGE_TAG}},
    }


def render_namespace_commands(spec: ClusterSpec) -> list[list[str]]:
    """`temporal` CLI commands that apply the namespace setup (for a Kubernetes Job next to
    the chart's, which creates namespaces but not search attributes). Run each; a namespace or
    attribute that already exists makes its command fail harmlessly."""
    cmds: list[list[str]] = []
    for ns in spec.namespaces:
        cmds.append(
            [
                "temporal",
                "operator",
                "namespace",
                "create",
                "--namespace",
                ns.name,
                "--retention",
                _retention_text(ns.retention_seconds),
                "--description",
                ns.description,
            ]
        )
        for attr, typ in sorted(ns.search_attributes.items()):
            cmds.append(
                [
                    "temporal",
                    "operator",
                    "search-attribute",
                    "create",
                    "--namespace",
                    ns.name,
                    "--name",
                    attr,
                    "--type",
                    typ.value,
                ]
            )
    return cmds
