"""OpenTelemetry tracing through temporalio's contrib interceptor.

Tracing is on only when OTEL_EXPORTER_OTLP_ENDPOINT is set; then spans go out over the HTTP
OTLP exporter (the gRPC one can abort the interpreter at exit next to grpcio).
"""

from __future__ import annotations

import os

from temporalio.client import Interceptor

_configured = False


def enabled() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def _configure_provider() -> None:
    global _configured
    if _configured:
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    service = os.environ.get("OTEL_SERVICE_NAME", "haul")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True


def client_interceptors() -> list[Interceptor]:
    """The tracing interceptor (it also covers workers built from this client), or none."""
    if not enabled():
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    _configure_provider()
    return [TracingInterceptor()]


def shutdown() -> None:
    """Flush spans before exit."""
    if not _configured:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    flush = getattr(provider, "shutdown", None)
    if flush:
        flush()
