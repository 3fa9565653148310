"""What a million billable actions costs self-hosted, against Temporal Cloud's tiered price.

Inputs: the sustained billable actions/s one deployment holds within its SLOs (from
`haul loadtest capacity`, or given), the monthly volume to carry, and the deployment's bill of
materials. The volume's average rate (times a peak factor) decides how many such deployments
are needed; their monthly cost divided by the volume is the self-hosted $/million. Prices are
data, dated and cited, in app/loadtest/data/*.json; users update them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.loadtest.models import RunReport


def _load(path: str | Path | None, default: str) -> dict[str, Any]:
    if path is not None:
        return dict(json.loads(Path(path).read_text()))
    return dict(json.loads(resources.files("app.loadtest.data").joinpath(default).read_text()))


def load_cloud_pricing(path: str | Path | None = None) -> dict[str, Any]:
    """Temporal Cloud's tiered price per million actions (data/temporal_cloud_pricing.json)."""
    return _load(path, "temporal_cloud_pricing.json")


def load_aws_prices(path: str | Path | None = None) -> dict[str, Any]:
    """On-demand AWS prices for the bill of materials (data/aws_prices.json)."""
    return _load(path, "aws_prices.json")


def cloud_cost(actions: float, pricing: dict[str, Any]) -> float:
    """Monthly cost of `actions` billable actions under the tiered price list."""
    millions = actions / 1e6
    cost, floor = 0.0, 0.0
    for tier in pricing["tiers"]:
        top = tier["up_to_millions"]
        band = millions - floor if top is None else min(millions, top) - floor
        if band <= 0:
            break
        cost += band * tier["usd_per_million"]
        if top is None:
            break
        floor = top
    return cost


@dataclass
class NodeGroup:
    instance_type: str
    count: int

    @classmethod
    def parse(cls, text: str) -> NodeGroup:
        """`m6i.2xlarge:3` -> 3 nodes of m6i.2xlarge."""
        kind, _, count = text.partition(":")
        try:
            n = int(count or "1")
        except ValueError:
            raise ValueError(
                f"node group {text!r} must look like TYPE:COUNT, e.g. m6i.2xlarge:3"
            ) from None
        if n < 0:
            raise ValueError(f"node group {text!r}: the count must not be negative")
        return cls(kind, n)


@dataclass
class BillOfMaterials:
    """One self-hosted deployment: EKS with node groups, and RDS Postgres or Scylla nodes."""

    eks_clusters: int = 1
    nodes: list[NodeGroup] = field(default_factory=list)
    rds_class: str | None = None
    rds_multi_az: bool = True
    rds_storage_gb: float = 0.0
    scylla_nodes: list[NodeGroup] = field(default_factory=list)
    ebs_storage_gb: float = 0.0


def _hourly(table: dict[str, float], kind: str, what: str) -> float:
    try:
        return float(table[kind])
    except KeyError:
        raise ValueError(
            f"no price for {what} {kind!r} in the price table; known: {', '.join(sorted(table))}. "
            "Add it to app/loadtest/data/aws_prices.json (or pass --prices FILE)"
        ) from None


def bom_cost(bom: BillOfMaterials, prices: dict[str, Any]) -> dict[str, float]:
    """Monthly cost of one deployment, line by line, plus `total`."""
    hours = float(prices["hours_per_month"])
    lines: dict[str, float] = {}
    if bom.eks_clusters:
        lines["EKS control plane"] = bom.eks_clusters * prices["eks_cluster_per_hour"] * hours
    for group in bom.nodes:
        rate = _hourly(prices["ec2_per_hour"], group.instance_type, "EC2 instance type")
        lines[f"nodes {group.count} x {group.instance_type}"] = group.count * rate * hours
    if bom.rds_class:
        copies = 2 if bom.rds_multi_az else 1
        rate = _hourly(prices["rds_per_hour"], bom.rds_class, "RDS instance class")
        az = "Multi-AZ" if bom.rds_multi_az else "single-AZ"
        lines[f"RDS {bom.rds_class} {az}"] = copies * rate * hours
        if bom.rds_storage_gb:
            lines[f"RDS storage {bom.rds_storage_gb:g} GB"] = (
                copies * bom.rds_storage_gb * prices["rds_gp3_per_gb_month"]
            )
    for group in bom.scylla_nodes:
        rate = _hourly(prices["ec2_per_hour"], group.instance_type, "Scylla node type")
        lines[f"Scylla {group.count} x {group.instance_type}"] = group.count * rate * hours
    if bom.ebs_storage_gb:
        lines[f"EBS gp3 {bom.ebs_storage_gb:g} GB"] = (
            bom.ebs_storage_gb * prices["ebs_gp3_per_gb_month"]
        )
    lines["total"] = sum(lines.values())
    return lines


@dataclass
class CostEstimate:
    monthly_actions: float
    capacity_actions_per_s: float
    required_actions_per_s: float
    deployments: int
    deployment_monthly: float
    self_hosted_monthly: float
    self_hosted_per_million: float
    cloud_monthly: float
    cloud_per_million: float
    savings_ratio: float
    lines: dict[str, float]
    cloud_pricing_as_of: str
    aws_prices_as_of: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate(
    capacity_actions_per_s: float,
    bom: BillOfMaterials,
    *,
    monthly_actions: float = 1e9,
    peak_factor: float = 1.0,
    prices: dict[str, Any] | None = None,
    cloud_pricing: dict[str, Any] | None = None,
) -> CostEstimate:
    """Self-hosted vs Temporal Cloud for one month of `monthly_actions`.

    The volume's average rate times peak_factor must fit under the measured capacity; when it
    does not, identical deployments are added until it does.
    """
    if capacity_actions_per_s <= 0:
        raise ValueError(
            "the sustained actions/s must be positive; measure it with "
            "`haul loadtest capacity` or pass --actions-per-second"
        )
    if monthly_actions <= 0:
        raise ValueError("the monthly volume must be positive (e.g. --monthly-actions 1e9)")
    prices = prices or load_aws_prices()
    cloud_pricing = cloud_pricing or load_cloud_pricing()
    seconds = float(prices["hours_per_month"]) * 3600
    required = monthly_actions / seconds * peak_factor
    deployments = max(1, math.ceil(required / capacity_actions_per_s - 1e-9))
    lines = bom_cost(bom, prices)
    self_hosted = deployments * lines["total"]
    cloud = cloud_cost(monthly_actions, cloud_pricing)
    millions = monthly_actions / 1e6
    return CostEstimate(
        monthly_actions=monthly_actions,
        capacity_actions_per_s=capacity_actions_per_s,
        required_actions_per_s=required,
        deployments=deployments,
        deployment_monthly=lines["total"],
        self_hosted_monthly=self_hosted,
        self_hosted_per_million=self_hosted / millions,
        cloud_monthly=cloud,
        cloud_per_million=cloud / millions,
        savings_ratio=cloud / self_hosted if self_hosted else math.inf,
        lines=lines,
        cloud_pricing_as_of=str(cloud_pricing.get("as_of", "")),
        aws_prices_as_of=str(prices.get("as_of", "")),
    )


def capacity_from_report(path: str | Path) -> float:
    """The sustained actions/s in a `haul loadtest` report.json (capacity runs preferred)."""
    try:
        report = RunReport.read(path)
    except (OSError, ValidationError) as exc:
        raise ValueError(
            f"{path} is not a haul loadtest report ({str(exc).splitlines()[0]}); "
            "pass the report.json that `haul loadtest capacity` or `run` wrote"
        ) from None
    return report.sustained_actions_per_s()
