"""The scenario table: which Locust user classes a scenario runs and what its SLOs gate on.

A scenario is a set of weighted Locust User classes (defined in `loadtest/locustfile.py`) plus
the request names whose latency and failures are its business operations. Adding a scenario
means adding its User class there and one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    # Locust User class names in loadtest/locustfile.py; their `weight` attributes mix them.
    user_classes: tuple[str, ...]
    # Request names (Locust `name`) that are one business operation each; SLOs gate on them.
    operations: tuple[str, ...]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "start_and_complete",
            "start a workflow with one no-op activity and wait for its result "
            "(comparable to omes workflow_with_single_noop_activity)",
            ("StartAndCompleteUser",),
            ("start_and_complete",),
        ),
        Scenario(
            "signal_fan_in",
            "signal-with-start bursts on a fixed set of entities (retry_on_signal)",
            ("SignalFanInUser",),
            ("signal_with_start",),
        ),
        Scenario(
            "parcel_ingest",
            "ingest a small generated EDI 210 file end to end: splitter, one child per "
            "invoice, rate audit, review queue, shipment-job status entities",
            ("ParcelIngestUser",),
            ("parcel_ingest",),
        ),
        Scenario(
            "mixed",
            "start_and_complete, signal_fan_in (with entity queries) and parcel_ingest users "
            "side by side",
            ("StartAndCompleteUser", "MixedEntityUser", "ParcelIngestUser"),
            ("start_and_complete", "signal_with_start", "parcel_ingest"),
        ),
        Scenario(
            "timer",
            "start a workflow that waits on a 1-second timer and wait for its result "
            "(keeps many calls in flight; the concurrency check)",
            ("TimerUser",),
            ("timer_1s",),
        ),
    )
}


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(
            f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}"
        ) from None
