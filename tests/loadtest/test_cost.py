"""The cost model on a worked example, every number worked out by hand below."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.loadtest import cost
from app.loadtest.models import ServerConfig
from tests.loadtest.sample_report import capacity_report

PRICES = {
    "hours_per_month": 730,
    "eks_cluster_per_hour": 0.10,
    "ec2_per_hour": {"m6i.2xlarge": 0.384, "i4i.2xlarge": 0.686},
    "rds_per_hour": {"db.r6g.xlarge": 0.45},
    "rds_gp3_per_gb_month": 0.115,
    "ebs_gp3_per_gb_month": 0.08,
    "as_of": "test",
}
CLOUD = {
    "as_of": "test",
    "tiers": [
        {"up_to_millions": 5, "usd_per_million": 50.0},
        {"up_to_millions": 10, "usd_per_million": 45.0},
        {"up_to_millions": 20, "usd_per_million": 40.0},
        {"up_to_millions": 50, "usd_per_million": 35.0},
        {"up_to_millions": 100, "usd_per_million": 30.0},
        {"up_to_millions": None, "usd_per_million": 25.0},
    ],
}


def test_cloud_tiers_by_hand() -> None:
    assert cost.cloud_cost(3e6, CLOUD) == pytest.approx(3 * 50)
    # 5M at $50, then 2M at $45.
    assert cost.cloud_cost(7e6, CLOUD) == pytest.approx(250 + 90)
    # 5x50 + 5x45 + 10x40 + 30x35 + 50x30 + 900x25
    assert cost.cloud_cost(1e9, CLOUD) == pytest.approx(250 + 225 + 400 + 1050 + 1500 + 22500)


def test_worked_example_rds() -> None:
    bom = cost.BillOfMaterials(
        eks_clusters=1,
        nodes=[cost.NodeGroup.parse("m6i.2xlarge:3")],
        rds_class="db.r6g.xlarge",
        rds_multi_az=True,
        rds_storage_gb=200,
        ebs_storage_gb=100,
    )
    est = cost.estimate(200.0, bom, monthly_actions=1e9, prices=PRICES, cloud_pricing=CLOUD)
    # One deployment per month:
    #   EKS          0.10 x 730           =   73.00
    #   nodes    3 x 0.384 x 730          =  840.96
    #   RDS      2 x 0.45 x 730 (Multi-AZ)=  657.00
    #   RDS disk 2 x 200 GB x 0.115       =   46.00
    #   EBS      100 GB x 0.08            =    8.00
    #   total                             = 1624.96
    assert est.deployment_monthly == pytest.approx(1624.96)
    # 1e9 actions over 730 h = 2,628,000 s is 380.52 actions/s; 200/s per deployment -> 2.
    assert est.required_actions_per_s == pytest.approx(1e9 / 2_628_000)
    assert est.deployments == 2
    assert est.self_hosted_monthly == pytest.approx(3249.92)
    assert est.self_hosted_per_million == pytest.approx(3.24992)
    assert est.cloud_monthly == pytest.approx(25925.0)
    assert est.cloud_per_million == pytest.approx(25.925)
    assert est.savings_ratio == pytest.approx(25925.0 / 3249.92)


def test_worked_example_scylla_with_peak_factor() -> None:
    bom = cost.BillOfMaterials(
        eks_clusters=1,
        nodes=[cost.NodeGroup.parse("m6i.2xlarge:2")],
        scylla_nodes=[cost.NodeGroup.parse("i4i.2xlarge:3")],
    )
    # 20M actions/month: 7.61 actions/s average, x3 peak = 22.83/s; 50/s holds it in one.
    est = cost.estimate(
        50.0, bom, monthly_actions=2e7, peak_factor=3.0, prices=PRICES, cloud_pricing=CLOUD
    )
    # 73.00 + 2 x 0.384 x 730 (560.64) + 3 x 0.686 x 730 (1502.34) = 2135.98
    assert est.deployments == 1
    assert est.self_hosted_monthly == pytest.approx(2135.98)
    # 5x50 + 5x45 + 10x40 = 875
    assert est.cloud_monthly == pytest.approx(875.0)
    assert est.savings_ratio == pytest.approx(875.0 / 2135.98)


def test_unknown_instance_type_names_the_fix() -> None:
    bom = cost.BillOfMaterials(nodes=[cost.NodeGroup.parse("z9.huge:1")])
    with pytest.raises(ValueError, match="z9.huge.*aws_prices.json"):
        cost.estimate(100.0, bom, prices=PRICES, cloud_pricing=CLOUD)


def test_shipped_price_files_are_dated_and_cited() -> None:
    cloud = cost.load_cloud_pricing()
    assert cloud["source"].startswith("https://") and cloud["as_of"] and cloud["retrieved"]
    assert cloud["tiers"][0] == {"up_to_millions": 5, "usd_per_million": 50.0}
    assert cloud["tiers"][-1] == {"up_to_millions": None, "usd_per_million": 25.0}
    aws = cost.load_aws_prices()
    assert aws["as_of"] and all(url.startswith("https://") for url in aws["sources"].values())


def _cost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "cost", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_cost_command_reads_a_capacity_report(tmp_path: Path) -> None:
    path = capacity_report(tmp_path, held=400.0, broke=450.0).write()
    assert cost.capacity_from_report(path) == 400.0
    done = _cost("--capacity-report", str(path), "--node", "m6i.2xlarge:3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "savings ratio" in done.stdout
    # 1e9 actions a month is 380.5/s: 400/s holds it in one deployment, the breaking 450 unused.
    assert "one deployment holds 400.0, so 1 deployment(s)" in done.stdout


def test_cost_command_names_a_file_that_is_no_report(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"capacity": {"max_sustained_actions_per_s": 400.0}}))
    done = _cost("--capacity-report", str(path), "--node", "m6i.2xlarge:3")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not a haul loadtest report" in done.stderr


def test_cost_prints_the_server_a_capacity_was_measured_on(tmp_path: Path) -> None:
    report = capacity_report(tmp_path, held=400.0, broke=450.0)
    report.server = ServerConfig(
        source="local cluster pg (postgres)",
        server_version="1.32.0",
        shards=8,
        persistence="postgres (postgres12)",
        persistence_pool="max_conns 20, max_idle_conns 20",
    )
    done = _cost("--capacity-report", str(report.write()), "--node", "m6i.2xlarge:3")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {" ".join(line.replace("│", " ").split()) for line in done.stdout.splitlines()}
    assert "history shards 8" in lines
    assert "persistence pool max_conns 20, max_idle_conns 20" in lines
    assert "at step 1, 2 users, p95 80.0 ms" in lines
