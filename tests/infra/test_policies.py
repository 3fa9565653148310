"""The policy pack: every rule passes on every stack, and fails when the program's config
changes to violate it.

Negative cases change the real program's configuration, never a hand-written resource dict:
- `overrides` edit the stack file before validation (the config is still valid);
- `stack_updates` / `spec_updates` edit the validated StackConfig / ClusterSpec, skipping their
  validators, for rules the config layer already refuses: the pack must hold on its own.
"""

from __future__ import annotations

import pytest
from infra_harness import STACKS, stack_file
from policies.rules import RESOURCE_RULES, STACK_RULES, Res, evaluate, policies
from pulumi_policy import (
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)


def as_res(run) -> list[Res]:
    return [Res(r["type"], r["name"], r["inputs"]) for r in run.resources if r["custom"]]


def violations(run, rule: str) -> list[str]:
    assert run.ok, f"program failed instead of reaching the policy: {run.error}\n{run.traceback}"
    return evaluate(as_res(run))[rule]


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


def run_pack(run) -> list[str]:
    """Run the pulumi_policy wrappers (what the engine calls) over the recorded resources."""
    reported: list[str] = []

    def report(message, urn=None):
        reported.append(message)

    resources = as_res(run)
    for policy in policies():
        if isinstance(policy, ResourceValidationPolicy):
            validate = policy._ResourceValidationPolicy__validate
            for r in resources:
                args = ResourceValidationArgs(
                    r.type, r.props, f"urn:{r.name}", r.name, _opts(), None
                )
                validate(args, report)
        else:
            validate = policy._StackValidationPolicy__validate
            items = [
                PolicyResource(
                    r.type, r.props, f"urn:{r.name}", r.name, _opts(), None, None, [], {}
                )
                for r in resources
            ]
            validate(StackValidationArgs(items), report)
    return reported


def test_every_rule_is_in_the_pack():
    names = {p.name for p in policies()}
    assert names == set(RESOURCE_RULES) | set(STACK_RULES)
    assert len(names) == 9


@pytest.mark.parametrize("stack", STACKS)
def test_pack_passes_on_every_stack(stacks, stack):
    run = stacks[stack]
    assert {k: v for k, v in evaluate(as_res(run)).items() if v} == {}
    assert run_pack(run) == []


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


def test_every_rule_has_a_negative_case():
    assert set(NEGATIVES) == set(RESOURCE_RULES) | set(STACK_RULES)


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
    # visibility pool, plus the app database's workers: 30 max replicas x 10.
    app = 30 * 10
    assert [(used, limit) for _, used, limit in budget] == [(17 * 30 + app, 2000)]
    scylla = connection_budget(as_res(stacks["prod-scylla"]))
    assert [(used, limit) for _, used, limit in scylla] == [(17 * 10 + app, 1000)]
    migration = sorted(connection_budget(as_res(stacks["migration"])))
    # The app database stays on temporal-a's instance through the migration.
    # Dual-cluster workers: one Deployment per group and cluster, so twice the app pods.
    assert [(used, limit) for _, used, limit in migration] == [
        (17 * 30 + 2 * app, 2000),
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
