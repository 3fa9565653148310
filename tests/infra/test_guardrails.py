"""Guardrails against the deployed state, with the stack's previous outputs mocked.

The deployed cluster has 512 history shards and runs server 1.29; the program runs at preview
(the runner sets preview=True) and must refuse before the Temporal release is declared.
"""

from __future__ import annotations

import pytest
from guardrails import GuardrailError, check_server_version

DEPLOYED = {"temporal-a": {"numHistoryShards": 512, "serverVersion": "1.29.0"}}


def preview(run_stack, shards: int, version: str):
    return run_stack(
        "dev",
        deployed=DEPLOYED,
        overrides={
            "haul:clusters[0].spec.numHistoryShards": shards,
            "haul:clusters[0].spec.server_version": version,
        },
    )


def temporal_releases(run):
    return [
        r
        for r in run.of_type("kubernetes:helm.sh/v3:Release")
        if r["inputs"]["chart"] == "temporal"
    ]


def test_changed_shard_count_is_refused_naming_both_values(run_stack):
    run = preview(run_stack, 1024, "1.30.0")
    assert not run.ok
    assert "GuardrailError" in run.error
    assert "1024" in run.error and "512" in run.error
    assert "temporal-a" in run.error
    assert temporal_releases(run) == []


def test_server_version_skipping_a_minor_is_refused_naming_both_values(run_stack):
    run = preview(run_stack, 512, "1.31.0")
    assert not run.ok
    assert "GuardrailError" in run.error
    assert "1.31.0" in run.error and "1.29.0" in run.error
    assert temporal_releases(run) == []


def test_next_minor_with_same_shards_passes(run_stack):
    run = preview(run_stack, 512, "1.30.0")
    assert run.ok, run.error
    (release,) = temporal_releases(run)
    values = release["inputs"]["values"]
    assert values["server"]["image"]["tag"] == "1.30.0"
    assert values["server"]["config"]["persistence"]["numHistoryShards"] == 512
    assert run.outputs["clusters"]["temporal-a"] == {
        "numHistoryShards": 512,
        "serverVersion": "1.30.0",
    }


def test_first_deploy_has_no_deployed_state(run_stack):
    run = run_stack("dev", deployed=None)
    assert run.ok, run.error


def test_guardrails_only_compare_the_same_cluster(run_stack):
    run = run_stack(
        "dev", deployed={"temporal-z": {"numHistoryShards": 4, "serverVersion": "1.20.0"}}
    )
    assert run.ok, run.error


@pytest.mark.parametrize(
    ("requested", "deployed", "ok"),
    [
        ("1.30.0", "1.29.0", True),
        ("1.29.3", "1.29.0", True),
        ("1.29.0", "1.29.0", True),
        ("1.31.0", "1.29.0", False),
        ("1.28.0", "1.29.0", False),
        ("2.0.0", "1.29.0", False),
    ],
)
def test_server_version_steps(requested, deployed, ok):
    if ok:
        check_server_version("c", requested, deployed)
    else:
        with pytest.raises(GuardrailError) as err:
            check_server_version("c", requested, deployed)
        assert requested in str(err.value) and deployed in str(err.value)
