import socket
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from app.platform.actions import ActionReader, PodCounters, delta, expand_url, parse_actions

PAGE = """\
# HELP action_total
# TYPE action_total counter
action_total{action_type="grpc_StartWorkflowExecution",namespace="haul",service_name="frontend"} 3
action_total{action_type="command_ScheduleActivityTask",namespace="haul",service_name="frontend"} 5
action_total{action_type="command_ScheduleActivityTask",namespace="haul",service_name="history"} 7
action_total{action_type="grpc_StartWorkflowExecution",namespace="other",service_name="frontend"} 11
# HELP unrelated_total
# TYPE unrelated_total counter
unrelated_total{namespace="haul"} 13
"""


def test_parse_keeps_only_the_namespace_and_frontend() -> None:
    counts = parse_actions(PAGE, "haul")
    assert counts == {"grpc_StartWorkflowExecution": 3, "command_ScheduleActivityTask": 5}


def test_tally_style_name_without_total_suffix() -> None:
    page = '# TYPE action counter\naction{action_type="command_StartTimer",namespace="haul"} 2\n'
    assert parse_actions(page, "haul") == {"command_StartTimer": 2}


def test_delta_drops_unchanged_types() -> None:
    before = {"a": 1.0, "b": 2.0}
    after = {"a": 4.0, "b": 2.0, "c": 1.0}
    assert delta(before, after) == {"a": 3, "c": 1}


def _page(starts: int) -> bytes:
    return (
        "# TYPE action_total counter\n"
        f'action_total{{action_type="grpc_StartWorkflowExecution",namespace="haul"}} {starts}\n'
    ).encode()


@pytest.fixture
def two_frontends(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[HTTPServer]]]:
    """Two /metrics servers on 127.0.0.1 and 127.0.0.2 (one port), and a name that resolves
    to both, as a headless Service's name resolves to every frontend pod."""
    servers: list[HTTPServer] = []
    port = 0
    for host, starts in (("127.0.0.1", 3), ("127.0.0.2", 4)):

        class Metrics(BaseHTTPRequestHandler):
            body = _page(starts)

            def do_GET(self) -> None:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(self.body)

            def log_message(self, *args: object) -> None:
                pass

        server = HTTPServer((host, port), Metrics)
        port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    real = socket.getaddrinfo

    def resolve(host: str, *args: object, **kwargs: object) -> list:
        if host == "frontend-headless.test":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", (s.server_address[0], port))
                for s in servers
            ]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    yield f"dns+http://frontend-headless.test:{port}/metrics", servers
    for server in servers:
        server.shutdown()
        server.server_close()


async def test_dns_url_sums_every_frontend(two_frontends: tuple[str, list[HTTPServer]]) -> None:
    url, _ = two_frontends
    assert len(await expand_url(url)) == 2
    counts = await ActionReader(url, "haul").scrape()
    assert counts == {"grpc_StartWorkflowExecution": 7}


async def test_dns_url_fails_when_a_frontend_is_down(
    two_frontends: tuple[str, list[HTTPServer]],
) -> None:
    url, servers = two_frontends
    servers[1].shutdown()
    servers[1].server_close()
    with pytest.raises(httpx.HTTPError):
        await ActionReader(url, "haul", timeout=2).scrape()


async def test_dns_url_names_a_host_it_cannot_resolve() -> None:
    with pytest.raises(httpx.ConnectError, match="no-such-frontend.invalid"):
        await expand_url("dns+http://no-such-frontend.invalid:9090/metrics")
    with pytest.raises(ValueError, match="needs a host name and a port"):
        await expand_url("dns+http://frontend-headless/metrics")


def test_totals_keep_what_a_restarted_or_departed_pod_counted() -> None:
    pods = PodCounters()
    assert pods.total({"a": Counter(start=5), "b": Counter(start=3)}) == {"start": 8}
    # Pod a restarted (its counter began again at 1); pod b counted 2 more.
    assert pods.total({"a": Counter(start=1), "b": Counter(start=5)}) == {"start": 11}
    # Pod b went away and pod c came up.
    assert pods.total({"a": Counter(start=2), "c": Counter(start=4)}) == {"start": 16}
    # Nothing moved: the totals hold.
    assert pods.total({"a": Counter(start=2), "c": Counter(start=4)}) == {"start": 16}


async def test_a_frontend_that_leaves_mid_run_still_counts(
    two_frontends: tuple[str, list[HTTPServer]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, servers = two_frontends
    reader = ActionReader(url, "haul")
    assert await reader.scrape() == {"grpc_StartWorkflowExecution": 7}
    # The second pod is drained: it leaves the headless Service's name.
    resolve = socket.getaddrinfo

    def only_first(host: str, *args: object, **kwargs: object) -> list:
        return [i for i in resolve(host, *args, **kwargs) if i[4][0] == "127.0.0.1"]  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", only_first)
    assert len(await expand_url(url)) == 1
    assert await reader.scrape() == {"grpc_StartWorkflowExecution": 7}
