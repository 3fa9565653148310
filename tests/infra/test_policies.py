"""The policy pack: every rule passes on every stack, and fails when the program's config
changes to violate it.

Negative cases change the real program's configuration, never a hand-written resource dict:
- `overrides` edit the stack file before validation (the config is still valid);
- `stack_updates` / `spec_updates` edit the validated StackConfig / ClusterSpec, skipping their
  validators, for rules the config layer already refuses: the pack must hold on its own.
"""

from __future__ import annotations

import json

import pytest
from infra_harness import STACKS, stack_file
from policies.rules import (
    CONFIG_MAP,
    DEPLOYMENT,
    PROTECTED_PORTS,
    RDS_INSTANCE,
    RELEASE,
    RESOURCE_RULES,
    SG,
    SG_INGRESS,
    SG_RULE,
    STACK_RULES,
    STORAGE_CLASS,
    Res,
    evaluate,
    policies,
)
from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)


def as_res(run) -> list[Res]:
    return [Res(r["type"], r["name"], r["inputs"]) for r in run.resources if r["custom"]]


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=None,
        additional_secret_outputs=[],
        parent=None,
    )


def run_pack(resources: list[Res]) -> dict[str, list[tuple[EnforcementLevel, str]]]:
    """Run the pack's policies as the engine does (each policy's `validate`, with its
    enforcement level) over `resources`: {policy name: [(enforcement, message)]}."""
    reported: dict[str, list[tuple[EnforcementLevel, str]]] = {}
    for policy in policies():

        def report(message, urn=None, policy=policy):
            reported.setdefault(policy.name, []).append((policy.enforcement_level, message))

        if isinstance(policy, ResourceValidationPolicy):
            for r in resources:
                args = ResourceValidationArgs(
                    r.type, r.props, f"urn:{r.name}", r.name, _opts(), None
                )
                policy.validate(args, report)
        else:
            items = [
                PolicyResource(
                    r.type, r.props, f"urn:{r.name}", r.name, _opts(), None, None, [], {}
                )
                for r in resources
            ]
            policy.validate(StackValidationArgs(items), report)
    return reported


def pack_violations(resources: list[Res], rule: str) -> list[str]:
    """What the pack reports for `rule`; every report must stop the deploy (MANDATORY)."""
    found = run_pack(resources).get(rule, [])
    assert all(level == EnforcementLevel.MANDATORY for level, _ in found), found
    return [message for _, message in found]


def violations(run, rule: str) -> list[str]:
    assert run.ok, f"program failed instead of reaching the policy: {run.error}\n{run.traceback}"
    return pack_violations(as_res(run), rule)


def test_every_rule_is_in_the_pack():
    names = {p.name for p in policies()}
    assert names == set(RESOURCE_RULES) | set(STACK_RULES)
    assert {p.enforcement_level for p in policies()} == {EnforcementLevel.MANDATORY}
    assert len(names) == 15


@pytest.mark.parametrize("stack", STACKS)
def test_pack_passes_on_every_stack(stacks, stack):
    run = stacks[stack]
    assert {k: v for k, v in evaluate(as_res(run)).items() if v} == {}
    assert run_pack(as_res(run)) == {}


NEGATIVES = {
    "no-public-rds": (
        "prod-postgres",
        {"stack_updates": {"clusters.0.postgres.publicly_accessible": True}},
        "publicly accessible",
    ),
    "encrypted-storage": (
        "dev",
        {"stack_updates": {"clusters.0.postgres.storage_encrypted": False}},
        "not KMS-encrypted",
    ),
    "tls-in-production": (
        "prod-postgres",
        {"spec_updates": {"visibility.tls.enabled": False}},
        "visibility store (sql) has TLS off",
    ),
    "deletion-protection-in-production": (
        "prod-scylla",
        {"stack_updates": {"clusters.0.postgres.deletion_protection": False}},
        "no deletion protection",
    ),
    "history-shards-power-of-two": (
        "dev",
        {"spec_updates": {"num_history_shards": 1000}},
        "1000 is not a power of two",
    ),
    "pdb-and-limits": (
        "dev",
        {"overrides": {"haul:clusters[0].services.history.replicas": 1}},
        "history gets no PDB",
    ),
    "no-plaintext-secrets": (
        "prod-postgres",
        {"stack_updates": {"clusters.0.spec.dynamic_config": {"system.archivalToken": "hunter2"}}},
        "dynamicConfig.system.archivalToken",
    ),
    "no-world-open-ports": (
        "prod-postgres",
        {"stack_updates": {"clusters.0.postgres.allowed_cidrs": ["0.0.0.0/0"]}},
        "opens Postgres (5432) to the world",
    ),
    "rds-connection-budget": (
        "prod-postgres",
        {"overrides": {"haul:clusters[0].services.history.replicas": 50}},
        "not under max_connections 2000",
    ),
}


# Branches a committed stack's config reaches, besides the one case per rule above.
CONFIG_BRANCHES = [
    (
        "no-world-open-ports",
        "prod-postgres",
        {"stack_updates": {"clusters.0.postgres.allowed_cidrs": ["::/0"]}},
        "opens Postgres (5432) to the world",
    ),
    (
        "tls-in-production",
        "prod-postgres",
        {"stack_updates": {"clusters.0.spec.visibility.tls.enabled": False}},
        "does not set rds.force_ssl=1 in production",
    ),
    (
        "tls-in-production",
        "prod-scylla",
        {"spec_updates": {"visibility.tls.enable_host_verification": False}},
        "does not verify the RDS host",
    ),
    (
        "tls-in-production",
        "prod-scylla",
        {"spec_updates": {"persistence.tls.enable_host_verification": False}},
        "default store does not verify the Scylla host",
    ),
    (
        "frontend-mtls-in-production",
        "migration",
        {"stack_updates": {"clusters.1.mtls": False}},
        "temporal-b-temporal: the frontend does not require client certificates",
    ),
    (
        "frontend-authorizer-in-production",
        "migration",
        {"stack_updates": {"clusters.1.mtls": False}},
        "temporal-b-temporal: the frontend does not run the JWT authorizer",
    ),
    (
        "frontend-authorizer-in-production",
        "migration",
        {"stack_updates": {"clusters.1.mtls": False}},
        "temporal-b-temporal: no internal frontend",
    ),
    (
        "scylla-authentication",
        "prod-scylla",
        {"spec_updates": {"persistence.user": None}},
        "default store connects to Scylla without a user",
    ),
]


def altered(run, type_: str, name: str, change) -> list[Res]:
    """The run's resources with one of them (by type and name) changed by `change(props)`."""
    out, hits = [], 0
    for r in as_res(run):
        if r.type == type_ and r.name == name:
            hits += 1
            r = Res(r.type, r.name, change(dict(r.props)))
        out.append(r)
    assert hits == 1, f"{name} ({type_}) not found once in the run"
    return out


def _without_auth(props: dict) -> dict:
    text = props["data"]["scylla.yaml"].replace("authenticator: PasswordAuthenticator\n", "")
    return {**props, "data": {"scylla.yaml": text}}


def _client_auth_off(props: dict) -> dict:
    text = props["data"]["scylla.yaml"].replace(
        "require_client_auth: true", "require_client_auth: false"
    )
    return {**props, "data": {"scylla.yaml": text}}


def _without_client_cert(props: dict) -> dict:
    values = json.loads(json.dumps(props["values"]))
    datastores = values["server"]["config"]["persistence"]["datastores"]
    tls = datastores["default"]["cassandra"]["tls"]
    tls.pop("certFile")
    tls.pop("keyFile")
    return {**props, "values": values}


def _without_authorizer(props: dict) -> dict:
    values = props["values"]
    config = {k: v for k, v in values["server"]["config"].items() if k != "authorization"}
    return {**props, "values": {**values, "server": {**values["server"], "config": config}}}


# Rules whose violation no stack config can produce (the program always sets these): the
# program's own resource, altered after the run, must be refused by the pack.
ALTERED = {
    "grafana-admin-from-secret": (
        "dev",
        ("kubernetes:helm.sh/v3:Release", "kube-prometheus-stack"),
        lambda props: {
            **props,
            "values": {**props["values"], "grafana": {"sidecar": {"dashboards": {}}}},
        },
        "Grafana keeps the chart's default admin password",
    ),
    "network-policy-enforcement": (
        "prod-scylla",
        ("aws:eks/addon:Addon", "haul-prod-scylla-vpc-cni"),
        lambda props: {k: v for k, v in props.items() if k != "configurationValues"},
        "EKS addon haul-prod-scylla-vpc-cni (vpc-cni) does not set enableNetworkPolicy",
    ),
    "frontend-authorizer-in-production": (
        "prod-postgres",
        ("kubernetes:helm.sh/v3:Release", "haul-prod-postgres-temporal-a-temporal"),
        _without_authorizer,
        "the frontend does not run the JWT authorizer",
    ),
    "scylla-client-certificates": (
        "prod-scylla",
        ("kubernetes:core/v1:ConfigMap", "haul-prod-scylla-temporal-b-scylla-config"),
        _client_auth_off,
        "scylla.yaml does not set client_encryption_options.require_client_auth: true",
    ),
    "scylla-authentication": (
        "prod-scylla",
        ("kubernetes:core/v1:ConfigMap", "haul-prod-scylla-temporal-b-scylla-config"),
        _without_auth,
        "scylla.yaml does not set authenticator: PasswordAuthenticator",
    ),
}


@pytest.mark.parametrize("rule", sorted(ALTERED))
def test_rule_fails_on_the_programs_resource_altered(stacks, rule):
    stack, (type_, name), change, message = ALTERED[rule]
    assert violations(stacks[stack], rule) == []
    found = pack_violations(altered(stacks[stack], type_, name, change), rule)
    assert any(message in m for m in found), found


def _camel_case_internal_frontend(props: dict) -> dict:
    values = props["values"]
    server = {k: v for k, v in values["server"].items() if k != "internal-frontend"}
    server["internalFrontend"] = {"enabled": True}
    return {**props, "values": {**values, "server": server}}


def test_an_internal_frontend_under_the_key_the_chart_ignores_is_refused(stacks):
    """Chart 1.7.0 reads `server.internal-frontend.enabled`; `internalFrontend` deploys none."""
    rule = "frontend-authorizer-in-production"
    release = ("kubernetes:helm.sh/v3:Release", "haul-prod-postgres-temporal-a-temporal")
    changed = altered(stacks["prod-postgres"], *release, _camel_case_internal_frontend)
    found = pack_violations(changed, rule)
    assert any("no internal frontend (server.internal-frontend.enabled)" in m for m in found), (
        found
    )


def test_a_temporal_release_without_a_scylla_client_certificate_is_refused(stacks):
    rule = "scylla-client-certificates"
    assert violations(stacks["prod-scylla"], rule) == []
    release = ("kubernetes:helm.sh/v3:Release", "haul-prod-scylla-temporal-b-temporal")
    found = pack_violations(altered(stacks["prod-scylla"], *release, _without_client_cert), rule)
    assert any("default store has no Scylla client certificate" in m for m in found), found


@pytest.mark.parametrize(
    ("rule", "stack", "request_", "message"),
    CONFIG_BRANCHES,
    ids=[f"{c[0]}:{c[3][:30]}" for c in CONFIG_BRANCHES],
)
def test_rule_branch_fails_when_the_config_reaches_it(run_stack, rule, stack, request_, message):
    found = violations(run_stack(stack, **request_), rule)
    assert any(message in m for m in found), found


PROD = {"tags": {"haul.dev/environment": "prod"}}


def _world(type_: str, **props) -> Res:
    return Res(type_, "open", props)


# Branches no stack config can reach (the program never opens these ports, nor writes these
# objects): the pack must still refuse them, as resources the engine would hand it.
RESOURCE_BRANCHES = [
    *(
        (
            "no-world-open-ports",
            [_world(SG_INGRESS, fromPort=p, toPort=p, ipProtocol="tcp", cidrIpv4="0.0.0.0/0")],
            [f"open opens {what} ({p}) to the world"],
        )
        for p, what in PROTECTED_PORTS.items()
    ),
    (
        "no-world-open-ports",
        [
            _world(
                SG_RULE,
                type="ingress",
                protocol="-1",
                fromPort=0,
                toPort=0,
                cidrBlocks=["0.0.0.0/0"],
            )
        ],
        [f"open opens {what} ({p}) to the world" for p, what in PROTECTED_PORTS.items()],
    ),
    (
        "no-world-open-ports",
        [
            _world(
                SG,
                ingress=[
                    {
                        "fromPort": 7000,
                        "toPort": 7300,
                        "protocol": "tcp",
                        "ipv6CidrBlocks": ["::/0"],
                    }
                ],
            )
        ],
        [
            "open opens Temporal frontend gRPC (7233) to the world",
            "open opens Temporal frontend HTTP (7243) to the world",
        ],
    ),
    (
        "no-world-open-ports",
        [_world(SG_INGRESS, fromPort=5432, toPort=5432, ipProtocol="tcp", cidrIpv4="10.0.0.0/8")],
        [],
    ),
    (
        "encrypted-storage",
        [Res(STORAGE_CLASS, "gp3", {"parameters": {"type": "gp3"}})],
        ["StorageClass gp3 does not encrypt its volumes (parameters.encrypted)"],
    ),
    (
        "deletion-protection-in-production",
        [Res(RDS_INSTANCE, "db", {**PROD, "deletionProtection": True, "skipFinalSnapshot": True})],
        ["RDS instance db takes no final snapshot in production"],
    ),
    (
        "history-shards-power-of-two",
        [Res(RELEASE, "t", {"chart": "temporal", "values": {"server": {"config": {}}}})],
        ["Temporal release t does not set numHistoryShards"],
    ),
    (
        "no-plaintext-secrets",
        [Res(CONFIG_MAP, "cm", {"data": {"db_password": "x"}})],
        ["ConfigMap cm holds a credential-like key db_password"],
    ),
    (
        "no-plaintext-secrets",
        [Res(RELEASE, "r", {"values": {"env": [{"name": "API_TOKEN", "value": "x"}]}})],
        ["Helm release r has a plaintext secret in values at env[0](API_TOKEN)"],
    ),
    (
        "pdb-and-limits",
        [
            Res(
                DEPLOYMENT,
                "d",
                {
                    "metadata": {"namespace": "n"},
                    "spec": {
                        "template": {
                            "metadata": {"labels": {"app": "d"}},
                            "spec": {
                                "containers": [
                                    {
                                        "name": "c",
                                        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                                    }
                                ]
                            },
                        }
                    },
                },
            )
        ],
        ["Deployment d has no PodDisruptionBudget"],
    ),
]


@pytest.mark.parametrize(
    ("rule", "resources", "expected"),
    RESOURCE_BRANCHES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(RESOURCE_BRANCHES)],
)
def test_rule_branch_through_the_pack(rule, resources, expected):
    assert pack_violations(resources, rule) == expected


def test_every_rule_has_a_negative_case():
    cases = set(NEGATIVES) | set(ALTERED) | {c[0] for c in CONFIG_BRANCHES}
    assert cases == set(RESOURCE_RULES) | set(STACK_RULES)


@pytest.mark.parametrize("rule", sorted(NEGATIVES))
def test_rule_fails_when_the_config_violates_it(run_stack, stacks, rule):
    stack, request, message = NEGATIVES[rule]
    assert violations(stacks[stack], rule) == []
    found = violations(run_stack(stack, **request), rule)
    assert found, f"{rule} passed on a violating config"
    assert any(message in m for m in found), found


def test_worker_limits_are_required(run_stack):
    run = run_stack("dev", drop=["haul:apps.workerGroups[0].resources.cpuLimit"])
    found = violations(run, "pdb-and-limits")
    assert found == [
        "Deployment haul-dev-workers-general-temporal-a container worker has no cpu/memory limits"
    ]


def test_connection_budget_counts_pods_and_pools(stacks):
    from policies.rules import connection_budget

    budget = connection_budget(as_res(stacks["prod-postgres"]))
    # 3 + 8 + 4 + 2 Temporal pods, each with a 20-connection default pool and a 10-connection
    # visibility pool, plus the app database's pods: 30 max worker replicas and the failure
    # inbox's 2 (haul api), x 10.
    app = (30 + 2) * 10
    assert [(used, limit) for _, used, limit in budget] == [(17 * 30 + app, 2000)]
    scylla = connection_budget(as_res(stacks["prod-scylla"]))
    assert [(used, limit) for _, used, limit in scylla] == [(17 * 10 + app, 1000)]
    migration = sorted(connection_budget(as_res(stacks["migration"])))
    # The app database stays on temporal-a's instance through the migration.
    # Dual-cluster workers: one Deployment per group and cluster, so twice the worker pods;
    # the api is one Deployment that reads both clusters.
    assert [(used, limit) for _, used, limit in migration] == [
        (17 * 30 + 2 * 30 * 10 + 2 * 10, 2000),
        (17 * 10, 400),
    ]


def test_the_pack_is_built_only_in_its_main():
    from infra_harness import INFRA

    main = (INFRA / "policies" / "__main__.py").read_text()
    rules = (INFRA / "policies" / "rules.py").read_text()
    assert "PolicyPack(" in main
    assert "PolicyPack(" not in rules


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_files_hold_no_plaintext_credentials(stack):
    import config

    doc = stack_file(stack)
    assert config.plaintext_secret_keys(doc, set()) == []
    leaked = {**doc, "haul:apps": {**doc["haul:apps"], "registryPassword": "hunter2"}}
    assert config.plaintext_secret_keys(leaked, set()) == ["haul:apps.registryPassword"]
    assert config.plaintext_secret_keys(leaked, {"haul:apps"}) == []
