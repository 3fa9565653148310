"""The haul plugin: what every client, worker and replayer haul builds has in common.

One temporalio `SimplePlugin` wires the pydantic data converter, the tracing interceptor (when
OTLP is configured), the failure-recording interceptor and the platform's own activity (the
local activity that writes the failure store). A client made by `connect` carries it, and every
worker built from that client takes it from there, so nothing is wired twice.
"""

from __future__ import annotations

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.plugin import SimplePlugin

from app.platform import tracing
from app.platform.failures import FailureActivities, FailureInterceptor, FailureStore

PLUGIN_NAME = "haul"


class HaulPlugin(SimplePlugin):
    """Converter, interceptors and platform activities; `failure_store` is where workers built
    on this client record failed workflows (None: they log instead)."""

    def __init__(self, failure_store: FailureStore | None = None) -> None:
        super().__init__(
            PLUGIN_NAME,
            data_converter=pydantic_data_converter,
            interceptors=[*tracing.client_interceptors(), FailureInterceptor()],
            activities=[FailureActivities(failure_store).record],
        )
