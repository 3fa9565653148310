"""ClusterSpec: validation messages, and agreement between what we boot and what we deploy."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from temporalio.api.enums.v1 import IndexedValueType

from app import versions
from app.stack.spec import (
    CassandraStore,
    ClusterSpec,
    NamespaceSpec,
    PostgresStore,
    SecretRef,
    SpecError,
    TLSSettings,
    check_shard_count,
)
from app.stack.spec_render import (
    HELM_ONLY_KEYS,
    ListenConfig,
    dump_server_config,
    dump_yaml,
    render_dynamic_config,
    render_helm_values,
    render_namespace_commands,
    render_namespace_setup,
    render_server_config,
)

LISTEN = ListenConfig.from_base(17000, dynamic_config_path="/tmp/haul-test/dynamicconfig.yaml")
TLS_ON = TLSSettings(
    enabled=True,
    ca_file="/etc/ssl/rds-global-bundle.pem",
    enable_host_verification=True,
    server_name="db.example.internal",
)


def prod_postgres_spec() -> ClusterSpec:
    secret = SecretRef(env_var="RDS_PASSWORD", existing_secret="temporal-a-db", secret_key="pw")
    common: dict[str, Any] = dict(
        host="temporal-a.cluster-x.eu-west-1.rds.amazonaws.com",
        port=5432,
        user="temporal",
        password=secret,
        tls=TLS_ON,
        max_conns=40,
        max_idle_conns=10,
        max_conn_lifetime=timedelta(minutes=30),
    )
    return ClusterSpec(
        name="temporal-a",
        environment="prod",
        num_history_shards=512,
        persistence=PostgresStore(database="temporal", **common),
        visibility=PostgresStore(database="temporal_visibility", **common),
        namespaces=[
            NamespaceSpec(
                name="haul",
                retention=timedelta(days=14),
                search_attributes={"Team": "Keyword", "Amount": "Double"},
            )
        ],
        dynamic_config={
            "frontend.namespaceRPS": 2400,
            "matching.numTaskqueueReadPartitions": [
                {"value": 8, "constraints": {"taskQueueName": "parcel"}},
                {"value": 4},
            ],
            "matching.numTaskqueueWritePartitions": 4,
            "history.persistenceMaxQPS": 9000,
        },
    )


def prod_scylla_spec() -> ClusterSpec:
    return ClusterSpec(
        name="temporal-b",
        environment="prod",
        numHistoryShards=1024,
        persistence=CassandraStore(
            kind="scylla",
            hosts=["scylla-0.scylla", "scylla-1.scylla", "scylla-2.scylla"],
            datacenter="eu-west-1",
            keyspace="temporal",
            replication={"eu-west-1": 3},
            user="temporal",
            password=SecretRef(existing_secret="temporal-b-scylla"),
            tls=TLSSettings(
                enabled=True,
                ca_file="/etc/scylla/ca.pem",
                cert_file="/etc/scylla-client/tls.crt",
                key_file="/etc/scylla-client/tls.key",
            ),
            max_conns=4,
        ),
        visibility=PostgresStore(
            host="temporal-b-vis.rds.amazonaws.com",
            database="temporal_visibility",
            tls=TLS_ON,
        ),
        namespaces=[NamespaceSpec(name="haul", retention=7)],
    )


SPECS = {
    "local-postgres": lambda: ClusterSpec.local("pg-a"),
    "local-cassandra": lambda: ClusterSpec.local("cass-b", backend="cassandra"),
    "prod-postgres": prod_postgres_spec,
    "prod-scylla": prod_scylla_spec,
}


def error_text(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return " ".join(str(e["msg"]) for e in exc.value.errors())


# --------------------------------------------------------------------------------------------
# Validation messages
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "visibility",
    [
        {"kind": "cassandra", "hosts": ["127.0.0.1"]},
        {"kind": "scylla", "hosts": ["scylla-0"]},
        CassandraStore(),
    ],
)
def test_cassandra_visibility_is_refused(visibility: Any) -> None:
    with pytest.raises(ValidationError) as exc:
        ClusterSpec.model_validate({"name": "c1", "visibility": visibility})
    msg = error_text(exc)
    assert "visibility" in msg
    assert "1.24" in msg
    assert "Postgres" in msg


def test_tls_off_in_production_is_refused_for_sql() -> None:
    spec = prod_postgres_spec()
    data = spec.model_dump()
    data["visibility"]["tls"] = {"enabled": False}
    with pytest.raises(ValidationError) as exc:
        ClusterSpec.model_validate(data)
    msg = error_text(exc)
    assert "visibility store (postgres) has TLS off in production cluster 'temporal-a'" in msg
    assert "tls.enabled: true" in msg


def test_tls_off_in_production_is_refused_for_cql() -> None:
    data = prod_scylla_spec().model_dump()
    data["persistence"]["tls"] = {"enabled": False}
    with pytest.raises(ValidationError) as exc:
        ClusterSpec.model_validate(data)
    assert "persistence store (scylla) has TLS off in production" in error_text(exc)


def test_production_scylla_needs_a_client_certificate() -> None:
    data = prod_scylla_spec().model_dump()
    data["persistence"]["tls"].update(cert_file=None, key_file=None)
    with pytest.raises(ValidationError) as exc:
        ClusterSpec.model_validate(data)
    assert "has no client certificate in production" in error_text(exc)
    cass = render_helm_values(prod_scylla_spec())["server"]["config"]["persistence"]
    tls = cass["datastores"]["default"]["cassandra"]["tls"]
    assert tls["certFile"] == "/etc/scylla-client/tls.crt"
    assert tls["keyFile"] == "/etc/scylla-client/tls.key"


def test_a_client_certificate_needs_its_key() -> None:
    with pytest.raises(ValidationError, match="go together"):
        TLSSettings(enabled=True, cert_file="/c.pem")


def test_production_postgres_needs_host_verification() -> None:
    data = prod_postgres_spec().model_dump()
    data["persistence"]["tls"] = {"enabled": True, "ca_file": "/ca.pem"}
    with pytest.raises(ValidationError) as exc:
        ClusterSpec.model_validate(data)
    msg = error_text(exc)
    assert "host verification off" in msg and "tls.enable_host_verification: true" in msg


def test_tls_off_is_fine_outside_production() -> None:
    data = prod_postgres_spec().model_dump()
    data.update(environment="staging", persistence={"tls": {"enabled": False}})
    assert ClusterSpec.model_validate(data).persistence.tls.enabled is False


@pytest.mark.parametrize("shards", [3, 6, 500, 1000])
def test_shard_count_not_power_of_two_is_refused(shards: int) -> None:
    with pytest.raises(ValidationError) as exc:
        ClusterSpec(name="c1", num_history_shards=shards)
    msg = error_text(exc)
    assert f"numHistoryShards {shards} is not a power of two" in msg
    lower = 1 << (shards.bit_length() - 1)
    assert f"{lower} or {lower * 2}" in msg


@pytest.mark.parametrize("shards", [1, 4, 512, 8192])
def test_power_of_two_shards_pass(shards: int) -> None:
    assert ClusterSpec(name="c1", numHistoryShards=shards).num_history_shards == shards


def test_production_needs_an_explicit_shard_count() -> None:
    with pytest.raises(ValidationError) as exc:
        ClusterSpec.model_validate({"name": "c1", "environment": "prod"})
    assert "numHistoryShards is not set for prod cluster 'c1'" in error_text(exc)


def test_unknown_search_attribute_type_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        NamespaceSpec(name="haul", search_attributes={"Carrier": "Keyword", "Weight": "Float"})
    msg = error_text(exc)
    assert "'Weight'" in msg and "'Float'" in msg
    assert "Text, Keyword, Int, Double, Bool, Datetime, KeywordList" in msg


def test_retention_under_a_day_in_production_is_refused() -> None:
    data = prod_postgres_spec().model_dump()
    data["namespaces"] = [{"name": "haul", "retention": timedelta(hours=12)}]
    with pytest.raises(ValidationError) as exc:
        ClusterSpec.model_validate(data)
    msg = error_text(exc)
    assert "namespace 'haul' has retention 43200s (under 1 day)" in msg
    assert "at least 1 day" in msg


def test_short_retention_is_allowed_in_dev() -> None:
    spec = ClusterSpec(name="c1", namespaces=[NamespaceSpec(name="n", retention=0.5)])
    assert spec.namespaces[0].retention_seconds == 12 * 3600


def test_check_shard_count_names_both_values() -> None:
    check_shard_count(512, 512)
    with pytest.raises(SpecError) as exc:
        check_shard_count(1024, 512)
    msg = str(exc.value)
    assert "1024" in msg and "512" in msg and "GetClusterInfo" in msg
    assert "new cluster" in msg


@pytest.mark.parametrize(
    ("factory", "fragment"),
    [
        (lambda: TLSSettings(enabled=False, enable_host_verification=True), "tls.enabled: true"),
        (lambda: CassandraStore(kind="scylla", create_database=True), "migrations/scylla"),
        (lambda: CassandraStore(replication={"dc2": 3}), "datacenter 'datacenter1'"),
        (lambda: PostgresStore(max_conns=5, max_idle_conns=10), "max_idle_conns 10"),
        (lambda: SecretRef(env_var="hunter2 is my password"), "environment variable name"),
        (lambda: ClusterSpec(name="Bad_Name"), "cluster name 'Bad_Name'"),
        (
            lambda: ClusterSpec(name="c1", namespaces=[{"name": "a"}, {"name": "a"}]),
            "listed twice",
        ),
        (
            lambda: ClusterSpec(name="c1", dynamic_config={"frontendRPS": 1}),
            "dynamic config key 'frontendRPS'",
        ),
        (lambda: ListenConfig(host="0.0.0.0"), "not a loopback address"),
        (lambda: ListenConfig(history_grpc=7233), "frontend_grpc and history_grpc"),
        (
            lambda: ClusterSpec.model_validate({"name": "c1", "persistence": {"kind": "mysql"}}),
            "'mysql'",
        ),
    ],
)
def test_other_bad_input_is_refused_clearly(factory: Any, fragment: str) -> None:
    with pytest.raises(ValidationError) as exc:
        factory()
    assert fragment in error_text(exc)


def test_local_refuses_unknown_backend() -> None:
    with pytest.raises(SpecError, match="backend 'dev' is not a ClusterSpec backend"):
        ClusterSpec.local("c1", backend="dev")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Server YAML and Helm values agree on every shared field
# --------------------------------------------------------------------------------------------

SQL_FIELDS = [
    "pluginName",
    "databaseName",
    "connectAddr",
    "connectProtocol",
    "user",
    "maxConns",
    "maxIdleConns",
    "maxConnLifetime",
    "tls.enabled",
    "tls.caFile",
    "tls.enableHostVerification",
    "tls.serverName",
]
CQL_FIELDS = [
    "hosts",
    "port",
    "keyspace",
    "datacenter",
    "user",
    "maxConns",
    "consistency.default.consistency",
    "consistency.default.serialConsistency",
    "tls.enabled",
    "tls.caFile",
    "tls.enableHostVerification",
    "tls.serverName",
    "tls.certFile",
    "tls.keyFile",
]
TOP_FIELDS = [
    ("persistence.numHistoryShards", "server.config.persistence.numHistoryShards"),
    ("persistence.defaultStore", "server.config.persistence.defaultStore"),
    ("persistence.visibilityStore", "server.config.persistence.visibilityStore"),
]
# Present only in the server config: the password reference, which the chart replaces with
# existingSecret/secretKey.
SERVER_ONLY_FIELDS = {"password"}


def mapping_table() -> list[tuple[str, str]]:
    """(server config path, Helm values path) for every field the two must share."""
    table = list(TOP_FIELDS)
    for store in ("default", "visibility"):
        for driver, fields in (("sql", SQL_FIELDS), ("cassandra", CQL_FIELDS)):
            for field in fields:
                server = f"persistence.datastores.{store}.{driver}.{field}"
                table.append((server, f"server.config.{server}"))
    return table


MISSING = object()


def get_path(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return MISSING
        data = data[part]
    return data


def leaves(data: Any, prefix: str = "") -> set[str]:
    if isinstance(data, dict) and data:
        out: set[str] = set()
        for key, value in data.items():
            out |= leaves(value, f"{prefix}.{key}" if prefix else key)
        return out
    return {prefix}


def disagreements(server: dict[str, Any], helm: dict[str, Any]) -> list[str]:
    """Every shared field whose value differs, or that one side renders and the other not."""
    out = []
    for server_path, helm_path in mapping_table():
        a, b = get_path(server, server_path), get_path(helm, helm_path)
        if a != b:
            out.append(f"{server_path}={a!r} vs {helm_path}={b!r}")
    return out


@pytest.mark.parametrize("name", sorted(SPECS))
def test_server_config_and_helm_values_agree(name: str) -> None:
    spec = SPECS[name]()
    server = render_server_config(spec, LISTEN)
    helm = render_helm_values(spec)
    assert disagreements(server, helm) == []
    # The fields really are there (a table of paths both sides lack would agree vacuously).
    present = [s for s, _ in mapping_table() if get_path(server, s) is not MISSING]
    assert "persistence.numHistoryShards" in present
    assert any(p.endswith("sql.connectAddr") for p in present)
    assert any(p.endswith("tls.enabled") for p in present)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_mapping_table_covers_every_rendered_field(name: str) -> None:
    """A new persistence field rendered on either side must be added to the table (or be an
    explicit Helm-only / server-only key), so it cannot be forgotten silently."""
    spec = SPECS[name]()
    server_leaves = {
        p
        for p in leaves(render_server_config(spec, LISTEN)["persistence"], "persistence")
        if p.rsplit(".", 1)[-1] not in SERVER_ONLY_FIELDS
    }
    helm_persistence = render_helm_values(spec)["server"]["config"]["persistence"]
    helm_leaves = {
        p
        for p in leaves(helm_persistence, "server.config.persistence")
        if p.rsplit(".", 1)[-1] not in HELM_ONLY_KEYS
    }
    table = mapping_table()
    assert server_leaves - {s for s, _ in table} == set()
    assert helm_leaves - {h for _, h in table} == set()


def test_agreement_check_detects_drift() -> None:
    spec = prod_postgres_spec()
    server = render_server_config(spec, LISTEN)
    helm = render_helm_values(spec)
    sql = helm["server"]["config"]["persistence"]["datastores"]["visibility"]["sql"]
    sql["tls"]["enableHostVerification"] = False
    del sql["maxIdleConns"]
    found = disagreements(server, helm)
    assert len(found) == 2
    assert any("tls.enableHostVerification" in d for d in found)
    assert any("maxIdleConns" in d for d in found)


def test_shared_values_come_from_the_spec() -> None:
    spec = prod_postgres_spec()
    helm = render_helm_values(spec)
    persistence = helm["server"]["config"]["persistence"]
    sql = persistence["datastores"]["default"]["sql"]
    assert persistence["numHistoryShards"] == 512
    assert sql["pluginName"] == "postgres12"
    assert sql["connectAddr"] == "temporal-a.cluster-x.eu-west-1.rds.amazonaws.com:5432"
    assert sql["databaseName"] == "temporal"
    assert sql["tls"] == {
        "enabled": True,
        "enableHostVerification": True,
        "caFile": "/etc/ssl/rds-global-bundle.pem",
        "serverName": "db.example.internal",
    }
    assert (sql["maxConns"], sql["maxIdleConns"], sql["maxConnLifetime"]) == (40, 10, "30m")
    vis = persistence["datastores"]["visibility"]["sql"]
    assert vis["databaseName"] == "temporal_visibility"

    cql = render_helm_values(prod_scylla_spec())["server"]["config"]["persistence"]
    cass = cql["datastores"]["default"]["cassandra"]
    assert cass["hosts"] == "scylla-0.scylla,scylla-1.scylla,scylla-2.scylla"
    assert cass["datacenter"] == "eu-west-1"
    assert cass["consistency"]["default"] == {
        "consistency": "LOCAL_QUORUM",
        "serialConsistency": "LOCAL_SERIAL",
    }
    assert "sql" in cql["datastores"]["visibility"]


def test_helm_only_keys_are_mapped_explicitly() -> None:
    assert set(HELM_ONLY_KEYS) == {"existingSecret", "secretKey", "createDatabase", "manageSchema"}
    pg = render_helm_values(prod_postgres_spec())["server"]["config"]["persistence"]["datastores"]
    assert pg["default"]["sql"]["existingSecret"] == "temporal-a-db"
    assert pg["default"]["sql"]["secretKey"] == "pw"
    assert pg["default"]["sql"]["createDatabase"] is True
    assert pg["default"]["sql"]["manageSchema"] is True
    scylla = render_helm_values(prod_scylla_spec())["server"]["config"]["persistence"]
    cass = scylla["datastores"]["default"]["cassandra"]
    # The chart cannot create a keyspace with tablets off: migrations/scylla bootstraps it.
    assert cass["createDatabase"] is False
    assert cass["manageSchema"] is True
    assert cass["existingSecret"] == "temporal-b-scylla"
    # A store with no explicit secret gets a per-cluster, per-store default name.
    vis = scylla["datastores"]["visibility"]["sql"]
    assert vis["existingSecret"] == "temporal-b-visibility-store"
    assert vis["secretKey"] == "password"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_helm_values_hold_no_plaintext_password(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "hunter2-'quoted\"-{{ not a template }}"
    monkeypatch.setenv("TEMPORAL_DB_PASSWORD", secret)
    monkeypatch.setenv("RDS_PASSWORD", secret)
    spec = SPECS[name]()
    helm = render_helm_values(spec)
    keys = {p.rsplit(".", 1)[-1].lower() for p in leaves(helm)}
    assert not any("password" in k for k in keys)
    assert secret not in dump_yaml(helm)
    # The locally booted server gets a reference to the environment, never the value.
    server_text = dump_server_config(render_server_config(spec, LISTEN))
    assert secret not in server_text


def test_helm_values_use_the_1x_layout_and_pinned_images() -> None:
    helm = render_helm_values(prod_postgres_spec())
    persistence = helm["server"]["config"]["persistence"]
    assert set(persistence["datastores"]) == {"default", "visibility"}
    # 0.x keys the 1.x chart refuses.
    assert "default" not in persistence and "visibility" not in persistence
    assert "schema" not in helm and "cassandra" not in helm and "elasticsearch" not in helm
    assert helm["server"]["image"]["tag"] == versions.TEMPORAL_SERVER_IMAGE_TAG
    assert helm["admintools"]["image"]["tag"] == versions.TEMPORAL_ADMINTOOLS_IMAGE_TAG
    assert versions.minor(versions.TEMPORAL_HELM_CHART)[0] >= 1


# --------------------------------------------------------------------------------------------
# Server config
# --------------------------------------------------------------------------------------------


def test_server_config_shape() -> None:
    spec = ClusterSpec.local("pg-a")
    cfg = render_server_config(spec, LISTEN)
    assert cfg["persistence"]["numHistoryShards"] == 4
    services = cfg["services"]
    assert set(services) == {"frontend", "history", "matching", "worker"}
    assert services["frontend"]["rpc"] == {
        "grpcPort": 17000,
        "membershipPort": 17002,
        "bindOnIP": "127.0.0.1",
        "httpPort": 17001,
    }
    assert services["worker"]["rpc"]["grpcPort"] == LISTEN.worker_grpc
    prom = cfg["global"]["metrics"]["prometheus"]
    assert prom["listenAddress"] == "127.0.0.1:17009"
    assert prom["handlerPath"] == "/metrics"
    assert LISTEN.metrics_url == "http://127.0.0.1:17009/metrics"
    meta = cfg["clusterMetadata"]
    assert meta["currentClusterName"] == meta["masterClusterName"] == "pg-a"
    assert meta["enableGlobalNamespace"] is False
    assert meta["failoverVersionIncrement"] == 10
    info = meta["clusterInformation"]["pg-a"]
    assert info["rpcAddress"] == "127.0.0.1:17000"
    assert info["httpAddress"] == "127.0.0.1:17001"
    assert cfg["archival"]["history"]["state"] == "disabled"
    assert cfg["dynamicConfigClient"]["filepath"] == "/tmp/haul-test/dynamicconfig.yaml"
    sql = cfg["persistence"]["datastores"]["default"]["sql"]
    assert sql["password"] == '{{ env "TEMPORAL_DB_PASSWORD" | toJson }}'


def test_listen_block_has_distinct_ports() -> None:
    listen = ListenConfig.from_base(20000, "/x/dc.yaml")
    ports = list(listen.ports().values())
    assert ports == list(range(20000, 20010))
    assert listen.frontend_address == "127.0.0.1:20000"


def server_text_with_env(text: str, env: dict[str, str]) -> str:
    """What the server's config templating produces for `{{ env "X" | toJson }}`."""
    assert text.splitlines()[0] == "# enable-template"
    return re.sub(
        r'\{\{ env "([A-Za-z_][A-Za-z0-9_]*)" \| toJson \}\}',
        lambda m: json.dumps(env.get(m.group(1), "")),
        text,
    )


@pytest.mark.parametrize("name", sorted(SPECS))
def test_server_yaml_round_trip(name: str) -> None:
    spec = SPECS[name]()
    cfg = render_server_config(spec, LISTEN)
    text = dump_server_config(cfg)
    password = "p@ss: 'with' \"quotes\" # and {braces}"
    loaded = yaml.safe_load(
        server_text_with_env(text, {"TEMPORAL_DB_PASSWORD": password, "RDS_PASSWORD": password})
    )
    expanded = 0
    for store in ("default", "visibility"):
        ((driver, body),) = loaded["persistence"]["datastores"][store].items()
        if "password" in body:
            assert body["password"] == password
            body["password"] = cfg["persistence"]["datastores"][store][driver]["password"]
            expanded += 1
    assert expanded >= 1
    assert loaded == cfg
    assert yaml.safe_load(dump_yaml(render_helm_values(spec))) == render_helm_values(spec)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_round_trips_through_yaml(name: str) -> None:
    spec = SPECS[name]()
    data = yaml.safe_load(dump_yaml(spec.model_dump(mode="json", by_alias=True)))
    assert "numHistoryShards" in data
    assert ClusterSpec.model_validate(data) == spec


# --------------------------------------------------------------------------------------------
# Dynamic config and namespaces
# --------------------------------------------------------------------------------------------


def test_dynamic_config_file_format() -> None:
    spec = prod_postgres_spec()
    dc = render_dynamic_config(spec)
    assert dc["frontend.namespaceRPS"] == [{"value": 2400, "constraints": {}}]
    assert dc["matching.numTaskqueueReadPartitions"] == [
        {"value": 8, "constraints": {"taskQueueName": "parcel"}},
        {"value": 4, "constraints": {}},
    ]
    for key, entries in dc.items():
        assert re.match(r"^[a-z]+\.[A-Za-z]", key)
        assert all(set(e) == {"value", "constraints"} for e in entries)
    # The file the local server watches is what the chart mounts.
    assert render_helm_values(spec)["server"]["dynamicConfig"] == dc
    assert yaml.safe_load(dump_yaml(dc)) == dc


def test_local_dynamic_config_overrides_merge() -> None:
    spec = ClusterSpec.local("pg-a", dynamic_config={"limit.maxIDLength": 255})
    dc = render_dynamic_config(spec)
    assert dc["limit.maxIDLength"] == [{"value": 255, "constraints": {}}]
    assert "system.forceSearchAttributesCacheRefreshOnRead" in dc


def test_namespace_setup() -> None:
    spec = ClusterSpec.local("pg-a")
    setup = render_namespace_setup(spec)
    names = [ns["name"] for ns in setup]
    assert names == ["default", "haul"]
    haul = setup[1]
    assert haul["retention_seconds"] == 7 * 86400
    assert haul["search_attributes"] == {
        "Carrier": "INDEXED_VALUE_TYPE_KEYWORD",
        "TaskIdentifier": "INDEXED_VALUE_TYPE_KEYWORD",
        "Team": "INDEXED_VALUE_TYPE_KEYWORD",
    }
    # The chart's namespace job creates the same namespaces with the same retention.
    helm_ns = render_helm_values(spec)["server"]["config"]["namespaces"]
    assert helm_ns["create"] is True
    assert [(n["name"], n["retention"]) for n in helm_ns["namespace"]] == [
        (ns["name"], f"{ns['retention_seconds'] // 3600}h") for ns in setup
    ]


def test_every_search_attribute_type_is_a_real_indexed_value_type() -> None:
    types = ["Text", "Keyword", "Int", "Double", "Bool", "Datetime", "KeywordList"]
    spec = ClusterSpec(
        name="c1",
        namespaces=[
            NamespaceSpec(name="n", search_attributes={f"A{t}": t for t in types}),
        ],
    )
    for attr, enum_name in render_namespace_setup(spec)[0]["search_attributes"].items():
        assert IndexedValueType.Value(enum_name) != IndexedValueType.INDEXED_VALUE_TYPE_UNSPECIFIED
        assert enum_name.endswith("_" + re.sub(r"(?<!^)(?=[A-Z])", "_", attr[1:]).upper())


def test_namespace_commands_cover_search_attributes() -> None:
    spec = prod_postgres_spec()
    cmds = render_namespace_commands(spec)
    assert cmds[0][:4] == ["temporal", "operator", "namespace", "create"]
    assert cmds[0][cmds[0].index("--retention") + 1] == "336h"
    sa = [c for c in cmds if c[2] == "search-attribute"]
    assert [(c[c.index("--name") + 1], c[c.index("--type") + 1]) for c in sa] == [
        ("Amount", "Double"),
        ("Team", "Keyword"),
    ]


def test_local_cassandra_spec() -> None:
    spec = ClusterSpec.local("cass-b", backend="cassandra", datacenter="dc1")
    assert isinstance(spec.persistence, CassandraStore)
    assert spec.persistence.replication_for(spec.environment) == {"dc1": 1}
    assert spec.persistence.consistency == "LOCAL_QUORUM"
    assert spec.persistence.serial_consistency == "LOCAL_SERIAL"
    assert spec.visibility.database == "temporal_visibility"
    assert spec.environment == "dev"
    assert prod_scylla_spec().persistence.replication_for("prod") == {"eu-west-1": 3}


def test_stack_file_shape_camel_case_and_flat_secret_keys() -> None:
    """infra/ hands a stack file's `spec` block over as-is: camelCase keys, Helm-style secrets."""
    spec = ClusterSpec.model_validate(
        {
            "name": "temporal-a",
            "environment": "prod",
            "numHistoryShards": 512,
            "persistence": {
                "host": "db.internal",
                "existingSecret": "temporal-a-db",
                "secretKey": "password",
                "maxConns": 30,
                "maxIdleConns": 30,
                "tls": {"enabled": True, "caFile": "/ca.pem", "enableHostVerification": True},
            },
            "visibility": {
                "host": "db.internal",
                "database": "temporal_visibility",
                "existingSecret": "temporal-a-db",
                "tls": {"enabled": True, "caFile": "/ca.pem", "enableHostVerification": True},
            },
            "namespaces": [
                {"name": "haul", "retention": 7, "searchAttributes": {"Team": "Keyword"}}
            ],
            "dynamicConfig": {"frontend.rps": 2400},
        }
    )
    assert spec.persistence.password is not None
    assert spec.persistence.password.existing_secret == "temporal-a-db"
    assert isinstance(spec.persistence, PostgresStore)
    assert spec.persistence.max_conns == 30
    assert spec.persistence.tls.ca_file == "/ca.pem"
    sql = render_helm_values(spec)["server"]["config"]["persistence"]["datastores"]["default"]
    assert sql["sql"]["existingSecret"] == "temporal-a-db"


@pytest.mark.parametrize(
    ("factory", "label"),
    [
        (lambda: PostgresStore.model_validate({"password": "hunter2"}), "postgres store"),
        (
            lambda: CassandraStore.model_validate({"user": "u", "password": "hunter2"}),
            "cassandra/scylla store",
        ),
    ],
)
def test_plaintext_password_is_refused(factory: Any, label: str) -> None:
    with pytest.raises(ValidationError) as exc:
        factory()
    msg = error_text(exc)
    assert f"{label} password is given as a value" in msg
    assert "hunter2" not in str(exc.value)


def test_server_version_defaults_to_the_pin_and_sets_the_image() -> None:
    spec = ClusterSpec(name="c1")
    assert spec.server_version == versions.TEMPORAL_SERVER
    assert render_helm_values(spec)["server"]["image"]["tag"] == versions.TEMPORAL_SERVER
    older = ClusterSpec(name="c1", server_version="1.31.2")
    assert render_helm_values(older)["server"]["image"]["tag"] == "1.31.2"
    with pytest.raises(ValidationError) as exc:
        ClusterSpec(name="c1", server_version="latest")
    assert "server_version 'latest' is not a release version" in error_text(exc)


def test_local_tls_reaches_both_postgres_stores() -> None:
    tls = TLSSettings(enabled=True, ca_file="/tmp/ca.pem", enable_host_verification=True)
    spec = ClusterSpec.local("pg-tls", tls=tls)
    stores = render_server_config(spec, LISTEN)["persistence"]["datastores"]
    for store in ("default", "visibility"):
        assert stores[store]["sql"]["tls"] == {
            "enabled": True,
            "enableHostVerification": True,
            "caFile": "/tmp/ca.pem",
        }
