"""Tracing over HTTP OTLP when configured, and the worker's /healthz and /metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from app.stack.registry import ClusterRecord
from app.stack.workers import start_worker, stop_worker, worker_env


class OtlpCollector(ThreadingHTTPServer):
    """A local OTLP/HTTP trace receiver: POST /v1/traces with a protobuf body."""

    def __init__(self) -> None:
        self.spans: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces":
                    req = ExportTraceServiceRequest.FromString(body)
                    for rs in req.resource_spans:
                        for ss in rs.scope_spans:
                            collector.spans += [s.name for s in ss.spans]
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    server = OtlpCollector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_client_workflow_and_activity_spans_reach_the_otlp_endpoint(
    dev_cluster: ClusterRecord, collector: OtlpCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    start_worker(dev_cluster, role="worker-traced")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "app.domains.sample.starter"],
            env={**os.environ, **worker_env(dev_cluster)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    finally:
        stop_worker(dev_cluster, "worker-traced")  # SIGTERM: spans are flushed on the way out
    assert "StartWorkflow:GreetingWorkflow" in collector.spans
    assert "RunWorkflow:GreetingWorkflow" in collector.spans
    assert "RunActivity:compose_greeting" in collector.spans


def test_no_endpoint_means_no_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.platform import tracing

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert tracing.client_interceptors() == []


def test_worker_serves_healthz_and_sdk_metrics_then_stops_cleanly(
    dev_cluster: ClusterRecord,
) -> None:
    start_worker(dev_cluster, role="worker-health")
    base = f"http://127.0.0.1:{dev_cluster.port('worker_health')}"
    try:
        assert httpx.get(f"{base}/healthz").status_code == 200
        metrics = httpx.get(f"{base}/metrics")
        assert metrics.status_code == 200
        assert "temporal_" in metrics.text
    finally:
        stop_worker(dev_cluster, "worker-health")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/healthz")
