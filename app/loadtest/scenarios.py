"""The scenario table: which Locust user classes a scenario runs and what its SLOs gate on.

A scenario is a set of weighted Locust User classes (defined in app/loadtest/locustfile.py)
plus the request names whose latency and failures are its business operations.

The classes are named here by string, on purpose: this table is read by the parent
`haul loadtest` process, which must not import Locust (importing it patches the interpreter
with gevent, under the parent's asyncio clients), and Locust itself takes user classes by name
on its command line. The names are kept honest from both sides instead:
- each user class declares the requests it reports (`request_names`), and reporting any other
  name is an error in the Locust process;
- `mismatches` compares this table with the locustfile's `declared_users()`, and a test runs
  it against the real locustfile, imported in a subprocess;
- Locust refuses a class name it does not find, so a run never silently runs nothing.
Adding a scenario means adding its User class there and one entry here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    # Locust User class names in app/loadtest/locustfile.py; their `weight` attributes mix them.
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
            "ingest a small generated EDI 210 file end to end: splitter, packed runs of "
            "invoices, rate audit, review queue, shipment-job status entities",
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


def mismatches(declared: Mapping[str, Sequence[str]]) -> list[str]:
    """What in the table the locustfile does not back, given its user classes by name with
    the requests each reports (`locustfile.declared_users()`); empty when all is well."""
    problems = []
    for sc in SCENARIOS.values():
        reported: set[str] = set()
        for name in sc.user_classes:
            if name not in declared:
                problems.append(f"{sc.name}: no user class {name!r} in the locustfile")
            reported.update(declared.get(name, ()))
        for op in sc.operations:
            if op not in reported:
                problems.append(
                    f"{sc.name}: operation {op!r} is reported by none of {sc.user_classes}"
                )
    return problems
