"""Observability: scraping, the OpenTelemetry collector, Grafana dashboards and SLO alerts.

The Temporal chart's own ServiceMonitors scrape the server (enabled in the chart values); this
component adds the workers' ServiceMonitor, an OTel collector that forwards OTLP to the
configured endpoint, the dashboards from infra/dashboards as Grafana sidecar ConfigMaps, and
the PrometheusRule with the Temporal SLO alerts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
from pydantic import BaseModel, ConfigDict

from app import versions
from components.addons import SYSTEM_NODES, SYSTEM_TOLERATION

DASHBOARDS = Path(__file__).resolve().parent.parent / "dashboards"
OTEL_REPO = "https://open-telemetry.github.io/opentelemetry-helm-charts"
NAMESPACE = "monitoring"


def _p95(metric: str, selector: str) -> str:
    return (
        f"histogram_quantile(0.95, sum by (le, namespace) "
        f"(rate({metric}_bucket{{{selector}}}[5m])))"
    )


def slo_rules() -> list[dict]:
    """Alerts on the Temporal SLOs. Server timers are Prometheus histograms in seconds."""
    return [
        {
            "alert": "TemporalStartWorkflowLatencyHigh",
            "expr": _p95(
                "service_latency", 'service_name="frontend",operation="StartWorkflowExecution"'
            )
            + " > 0.150",
            "for": "10m",
            "labels": {"severity": "page"},
            "annotations": {"summary": "StartWorkflowExecution p95 is above 150 ms"},
        },
        {
            "alert": "TemporalScheduleToStartLatencyHigh",
            "expr": _p95("task_schedule_to_start_latency", 'service_name="matching"') + " > 0.150",
            "for": "10m",
            "labels": {"severity": "page"},
            "annotations": {"summary": "Task schedule-to-start p95 is above 150 ms: add workers"},
        },
        {
            "alert": "TemporalShardLockLatencyHigh",
            "expr": _p95("lock_latency", 'service_name="history",operation="ShardInfo"')
            + " > 0.005",
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {"summary": "History shard lock p95 is above 5 ms"},
        },
        {
            "alert": "TemporalResourceExhausted",
            "expr": "sum by (namespace, resource_exhausted_cause) "
            "(rate(service_errors_resource_exhausted[5m])) > 0",
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {"summary": "Temporal is rejecting requests with RESOURCE_EXHAUSTED"},
        },
        {
            "alert": "TemporalPersistenceErrors",
            "expr": "sum by (service_name, operation) (rate(persistence_errors[5m])) > 0",
            "for": "5m",
            "labels": {"severity": "page"},
            "annotations": {"summary": "Temporal persistence calls are failing"},
        },
    ]


class ObservabilityArgs(BaseModel):
    model_config = ConfigDict(frozen=True)

    otlp_endpoint: str
    scrape_interval: str
    app_namespaces: list[str]


class Observability(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("haul:observability:Observability", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        k8s.helm.v3.Release(
            f"{name}-otel-collector",
            name="otel-collector",
            chart="opentelemetry-collector",
            version=versions.OTEL_COLLECTOR_CHART,
            namespace=NAMESPACE,
            create_namespace=True,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=OTEL_REPO),
            atomic=True,
            values={
                "mode": "deployment",
                "replicaCount": 2,
                "image": {"repository": "otel/opentelemetry-collector-contrib"},
                "nodeSelector": SYSTEM_NODES,
                "tolerations": [SYSTEM_TOLERATION],
                "resources": {
                    "requests": {"cpu": "200m", "memory": "256Mi"},
                    "limits": {"cpu": "1", "memory": "1Gi"},
                },
                "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
                "config": {
                    "receivers": {
                        "otlp": {
                            "protocols": {
                                "grpc": {"endpoint": "${env:MY_POD_IP}:4317"},
                                "http": {"endpoint": "${env:MY_POD_IP}:4318"},
                            }
                        }
                    },
                    "processors": {
                        "batch": {},
                        "memory_limiter": {
                            "check_interval": "5s",
                            "limit_percentage": 80,
                            "spike_limit_percentage": 25,
                        },
                    },
                    "exporters": {"otlphttp": {"endpoint": args.otlp_endpoint}},
                    "service": {
                        "pipelines": {
                            "traces": {
                                "receivers": ["otlp"],
                                "processors": ["memory_limiter", "batch"],
                                "exporters": ["otlphttp"],
                            },
                            "metrics": {
                                "receivers": ["otlp"],
                                "processors": ["memory_limiter", "batch"],
                                "exporters": ["otlphttp"],
                            },
                        }
                    },
                },
            },
            opts=child,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-workers",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={"name": "haul-apps", "namespace": NAMESPACE},
            spec={
                "namespaceSelector": {"matchNames": args.app_namespaces},
                "selector": {"matchLabels": {"app.kubernetes.io/part-of": "haul"}},
                "endpoints": [
                    {"port": "metrics", "path": "/metrics", "interval": args.scrape_interval}
                ],
            },
            opts=child,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-slo-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={"name": "temporal-slos", "namespace": NAMESPACE},
            spec={"groups": [{"name": "temporal-slos", "rules": slo_rules()}]},
            opts=child,
        )
        for path in sorted(DASHBOARDS.glob("*.json")):
            json.loads(path.read_text())  # a broken dashboard fails the preview, not Grafana
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{path.stem}",
                metadata={
                    "name": f"dashboard-{path.stem}",
                    "namespace": NAMESPACE,
                    "labels": {"grafana_dashboard": "1"},
                },
                data={path.name: path.read_text()},
                opts=child,
            )
        self.register_outputs({})
