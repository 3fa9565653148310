"""The shared reader of a Temporal server's billable-action counter.

The server counts billable actions in its Prometheus counter `action` (exported as
`action_total`), labelled by `action_type` and `namespace`, on the frontend. Everything that
reports actions (tests, benchmarks, load tests) reads it here: scrape, take the delta over a
window, and wait until the counter is quiet so late completions are not missed.

A multi-pod cluster has one counter per frontend pod. `dns+http://NAME:PORT/metrics` reads
them all: NAME (a headless Service) is resolved on every scrape and each address is scraped
and summed. A reader's totals never go down: what a pod counted before it restarted (its
counter began again) or went away (its address left the name) stays in the sum, as
Prometheus's increase() treats counter resets.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

ACTION_FAMILIES = ("action", "action_total")
_ACTION_PREFIXES: tuple[str, ...] = (
    "action{",
    "action_total{",
    "action ",
    "action_total ",
    "# HELP action",
    "# TYPE action",
)


def _action_lines(text: str) -> str:
    """Only the lines of the action families. A server's /metrics page runs to megabytes of
    histogram buckets (3.6 MB on a dev server), and parsing all of it costs a CPU-second per
    scrape; the action counter is a few dozen lines."""
    return "\n".join(line for line in text.splitlines() if line.startswith(_ACTION_PREFIXES)) + "\n"


def parse_actions(text: str, namespace: str) -> Counter[str]:
    """Sum the `action` counter by action_type for one namespace from a /metrics page."""
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(_action_lines(text)):
        if family.name not in ACTION_FAMILIES:
            continue
        for sample in family.samples:
            if not sample.name.endswith(("action", "action_total")):
                continue
            labels = sample.labels
            if labels.get("namespace") != namespace:
                continue
            if labels.get("service_name", "frontend") != "frontend":
                continue
            counts[labels.get("action_type", "unknown")] += round(sample.value)
    return counts


DNS_PREFIX = "dns+"


async def expand_url(url: str) -> list[str]:
    """The /metrics URLs behind url: itself, or one per address NAME resolves to for a
    `dns+` URL. An unresolvable name raises httpx.ConnectError, like an unreachable server."""
    if not url.startswith(DNS_PREFIX):
        return [url]
    parts = urlsplit(url.removeprefix(DNS_PREFIX))
    if not parts.hostname or not parts.port:
        raise ValueError(f"{url}: a dns+ metrics URL needs a host name and a port")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, parts.port, type=socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        raise httpx.ConnectError(f"cannot resolve {parts.hostname}: {exc}") from None
    hosts = sorted({str(info[4][0]) for info in infos})
    return [urlunsplit(parts._replace(netloc=f"{_host(h)}:{parts.port}")) for h in hosts]


def _host(address: str) -> str:
    return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address


def delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, int]:
    """Per action_type increase between two scrapes, dropping zeros."""
    out = {}
    for key in set(before) | set(after):
        diff = round(after.get(key, 0) - before.get(key, 0))
        if diff:
            out[key] = diff
    return dict(sorted(out.items()))


@dataclass
class PodCounters:
    """Monotonic totals over counters that may restart or disappear between scrapes."""

    last: dict[str, Counter[str]] = field(default_factory=dict)
    carried: Counter[str] = field(default_factory=Counter)

    def total(self, now: Mapping[str, Counter[str]]) -> Counter[str]:
        for source, before in self.last.items():
            after = now.get(source)
            for action_type, value in before.items():
                if after is None or after.get(action_type, 0) < value:
                    self.carried[action_type] += value
        self.last = dict(now)
        total = Counter(self.carried)
        for counts in now.values():
            total.update(counts)
        return total


@dataclass
class ActionReader:
    """Reads one server's action counter (every frontend pod's, for a dns+ URL) for one
    namespace."""

    metrics_url: str
    namespace: str
    timeout: float = 5.0
    pods: PodCounters = field(default_factory=PodCounters, repr=False)

    async def scrape(self) -> Counter[str]:
        urls = await expand_url(self.metrics_url)
        now: dict[str, Counter[str]] = {}
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            for url in urls:
                resp = await http.get(url)
                resp.raise_for_status()
                now[url] = parse_actions(resp.text, self.namespace)
        return self.pods.total(now)

    async def wait_quiet(
        self, quiet_for: float = 2.0, timeout: float = 60.0, interval: float = 0.5
    ) -> Counter[str]:
        """Scrape until the counter has not moved for quiet_for seconds; return the last scrape."""
        deadline = time.monotonic() + timeout
        last = await self.scrape()
        still_since = time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(interval)
            now = await self.scrape()
            if now != last:
                last, still_since = now, time.monotonic()
            elif time.monotonic() - still_since >= quiet_for:
                return now
        raise TimeoutError(
            f"the action counter at {self.metrics_url} kept moving for {timeout:.0f}s; "
            "is another workload running on this namespace?"
        )

    async def sample(
        self, stop: asyncio.Event, interval: float = 1.0
    ) -> list[tuple[float, Counter[str]]]:
        """Scrape every interval until stop is set: (unix time, counts) pairs for rates over time.

        A failed scrape is skipped rather than ending the series; the caller sees the gap.
        """
        series: list[tuple[float, Counter[str]]] = []
        last = False
        while True:
            with contextlib.suppress(httpx.HTTPError):
                series.append((time.time(), await self.scrape()))
            if last:
                return series
            try:
                await asyncio.wait_for(stop.wait(), interval)
                last = True  # one more scrape, so the series ends at the stop
            except TimeoutError:
                continue

    async def measure_start(self) -> Counter[str]:
        """Baseline for a window: wait for quiet, then take the counts."""
        return await self.wait_quiet()

    async def measure_end(self, baseline: Mapping[str, float]) -> dict[str, int]:
        """Counts since baseline, after the workload has gone quiet."""
        return delta(baseline, await self.wait_quiet())
