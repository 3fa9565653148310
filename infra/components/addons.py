"""ClusterAddons: cert-manager, the Prometheus Operator (kube-prometheus-stack) and KEDA.

cert-manager issues the Scylla Operator's webhook certificates and Temporal's mTLS
certificates; kube-prometheus-stack brings the ServiceMonitor and PrometheusRule definitions
and the Prometheus that reads them; KEDA scales the workers on task-queue backlog.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
from config import AddonsConfig
from pydantic import BaseModel, ConfigDict, SkipValidation

from app import versions

CHART_REPOS = {
    "cert-manager": "https://charts.jetstack.io",
    "kube-prometheus-stack": "https://prometheus-community.github.io/helm-charts",
    "keda": "https://kedacore.github.io/charts",
}
SYSTEM_TOLERATION = {"key": "CriticalAddonsOnly", "operator": "Exists", "effect": "NoSchedule"}
SYSTEM_NODES = {"haul.dev/node-group": "system"}
MONITORING = "monitoring"
# Grafana's admin login, from a generated Secret: never the chart's default password.
GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_ADMIN = {
    "existingSecret": GRAFANA_ADMIN_SECRET,
    "userKey": "admin-user",
    "passwordKey": "admin-password",
}


def release(
    name: str, chart: str, version: str, namespace: str, values: dict, opts: pulumi.ResourceOptions
) -> k8s.helm.v3.Release:
    return k8s.helm.v3.Release(
        name,
        name=name,
        chart=chart,
        version=version,
        namespace=namespace,
        create_namespace=True,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOS[chart]),
        atomic=True,
        cleanup_on_fail=True,
        timeout=900,
        values=values,
        opts=opts,
    )


class ClusterAddonsArgs(BaseModel):
    model_config = ConfigDict(frozen=True)

    config: SkipValidation[AddonsConfig]
    scrape_interval: str


class ClusterAddons(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: ClusterAddonsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("haul:addons:ClusterAddons", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        system = {"nodeSelector": SYSTEM_NODES, "tolerations": [SYSTEM_TOLERATION]}
        self.releases: list[k8s.helm.v3.Release] = []
        if args.config.cert_manager:
            self.cert_manager = release(
                "cert-manager",
                "cert-manager",
                versions.CERT_MANAGER_CHART,
                "cert-manager",
                {"crds": {"enabled": True}, **system, "webhook": system, "cainjector": system},
                child,
            )
            self.releases.append(self.cert_manager)
        if args.config.prometheus_stack:
            admin = self._grafana_admin(name)
            self.prometheus = release(
                "kube-prometheus-stack",
                "kube-prometheus-stack",
                versions.KUBE_PROMETHEUS_STACK_CHART,
                MONITORING,
                {
                    "prometheus": {
                        "prometheusSpec": {
                            # Pick up every ServiceMonitor and PrometheusRule, not only the chart's.
                            "serviceMonitorSelectorNilUsesHelmValues": False,
                            "podMonitorSelectorNilUsesHelmValues": False,
                            "ruleSelectorNilUsesHelmValues": False,
                            "scrapeInterval": args.scrape_interval,
                            "retention": "15d",
                        }
                    },
                    "grafana": {
                        "admin": GRAFANA_ADMIN,
                        "sidecar": {"dashboards": {"enabled": True, "searchNamespace": "ALL"}},
                    },
                    "prometheusOperator": system,
                },
                pulumi.ResourceOptions(parent=self, depends_on=[admin]),
            )
            self.releases.append(self.prometheus)
        if args.config.keda:
            self.keda = release(
                "keda",
                "keda",
                versions.KEDA_CHART,
                "keda",
                {
                    **system,
                    "prometheus": {
                        "operator": {"enabled": True},
                        "metricServer": {"enabled": True},
                    },
                },
                child,
            )
            self.releases.append(self.keda)
        self.register_outputs({"releases": [r.name for r in self.releases]})

    def _grafana_admin(self, name: str) -> k8s.core.v1.Secret:
        """The monitoring namespace (the Secret must exist before the chart installs) and
        Grafana's admin login with a generated password."""
        child = pulumi.ResourceOptions(parent=self)
        namespace = k8s.core.v1.Namespace(
            f"{name}-monitoring", metadata={"name": MONITORING}, opts=child
        )
        password = random.RandomPassword(
            f"{name}-grafana-admin", length=32, special=False, opts=child
        )
        return k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": GRAFANA_ADMIN_SECRET, "namespace": MONITORING},
            type="Opaque",
            string_data={
                GRAFANA_ADMIN["userKey"]: "admin",
                GRAFANA_ADMIN["passwordKey"]: password.result,
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace]),
        )
