"""The haul plugin: what every client, worker and replayer haul builds has in common.

One temporalio `SimplePlugin` wires the pydantic data converter (app.platform.converter), the
workflow sandbox with haul's deterministic modules passed through (app.platform.sandbox), the
tracing interceptor (when OTLP is configured) and the failure interceptor (which only enriches:
the poller records failures). A client made by `connect` carries it, and every worker built
from that client takes it from there, so nothing is wired twice.
"""

from __future__ import annotations

from temporalio.plugin import SimplePlugin

from app.platform import sandbox, tracing
from app.platform.converter import data_converter
from app.platform.failure_interceptor import FailureInterceptor
from app.platform.failures import FailureStore

PLUGIN_NAME = "haul"


class HaulPlugin(SimplePlugin):
    """Converter, sandbox and interceptors.

    `failure_store` is accepted for callers that still pass one and is not used: workers no
    longer write failures (a write from the workflow held failing runs open while the database
    was down); the poller records them."""

    def __init__(self, failure_store: FailureStore | None = None) -> None:
        super().__init__(
            PLUGIN_NAME,
            data_converter=data_converter(),
            interceptors=[*tracing.client_interceptors(), FailureInterceptor()],
            workflow_runner=sandbox.with_passthrough,
        )
