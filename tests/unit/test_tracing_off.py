"""Tracing that is off costs nothing: no interceptor on any task, no OpenTelemetry import."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, sys
from app.platform.plugin import HaulPlugin
plugin = HaulPlugin()
print(json.dumps({
    "interceptors": [type(i).__name__ for i in plugin.interceptors or []],
    "otel_modules": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
}))
"""


def _probe(**env: str) -> dict[str, list[str]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    result: dict[str, list[str]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_without_an_otlp_endpoint_no_tracing_interceptor_and_no_opentelemetry() -> None:
    probe = _probe()
    assert probe["interceptors"] == ["FailureInterceptor"]
    assert probe["otel_modules"] == []


def test_with_an_otlp_endpoint_the_tracing_interceptor_comes_first() -> None:
    probe = _probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert probe["interceptors"] == ["TracingInterceptor", "FailureInterceptor"]
