"""What a capacity figure was measured on, and which process ran out first.

A capacity number says little without the server it came from: the history shard count and
the persistence pool sizes bound what one deployment holds. `describe` reads the live shard
count and stores from the server (GetClusterInfo) and, for a local cluster, the pool sizes
from the ClusterSpec it booted from (a remote cluster's come from `--spec FILE`).

`CpuSampler` reads /proc for the local cluster's processes (server, Postgres, Cassandra, the
haul worker) and the host's busy share once a second, so each capacity step can say what
limited it: the host's cores, or the process nearest one core's worth (the Go server and
Cassandra use several cores; the Python worker's event loop runs on one).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from temporalio.api.workflowservice.v1 import GetClusterInfoRequest
from temporalio.client import Client

from app.loadtest.models import RunReport, ServerConfig, StepCpu
from app.loadtest.runner import step_windows
from app.loadtest.settings import StepShape
from app.stack.cluster import cluster_spec
from app.stack.registry import ClusterRecord, Registry
from app.stack.spec import CassandraStore, ClusterSpec, PostgresStore

CLK_TCK = os.sysconf("SC_CLK_TCK")
# Roles a local cluster records, by what they are in a capacity table.
CPU_ROLES = {
    "temporal": "server",
    "postgres": "postgres",
    "cassandra": "cassandra",
    "worker": "worker",
}


def _pool(store: PostgresStore | CassandraStore) -> str:
    if isinstance(store, PostgresStore):
        return f"max_conns {store.max_conns}, max_idle_conns {store.max_idle_conns}"
    return f"max_conns {store.max_conns} per host, {len(store.hosts)} host(s)"


async def describe(
    client: Client, record: ClusterRecord | None, spec: ClusterSpec | None = None
) -> ServerConfig:
    """The live server's shards and stores, with pool sizes from the spec it booted from."""
    info = await client.workflow_service.get_cluster_info(GetClusterInfoRequest())
    if spec is None and record is not None and record.backend != "dev":
        spec = cluster_spec(record)
    config = ServerConfig(
        source=f"local cluster {record.name} ({record.backend})" if record else "GetClusterInfo",
        server_version=info.server_version,
        shards=info.history_shard_count or None,
        persistence=info.persistence_store,
        visibility=info.visibility_store,
    )
    if record is not None and record.backend == "dev":
        config.persistence_pool = "dev server: one SQLite file, one writer"
        config.visibility_pool = config.persistence_pool
    elif spec is not None:
        config.persistence = f"{spec.persistence.kind} ({info.persistence_store})"
        config.persistence_pool = _pool(spec.persistence)
        config.visibility_pool = _pool(spec.visibility)
    return config


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children() -> dict[int, list[int]]:
    """Parent pid -> live child pids, for the whole host."""
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            out.setdefault(int(fields[1]), []).append(int(entry.name))
    return out


def _tree_cpu(pid: int, children: dict[int, list[int]]) -> float | None:
    """CPU seconds of a process, its reaped children and its live descendants (Postgres
    serves each connection from a child of the postmaster)."""
    fields = _stat(pid)
    if fields is None:
        return None
    own = sum(int(f) for f in fields[11:15]) / CLK_TCK
    return own + sum(_tree_cpu(c, children) or 0.0 for c in children.get(pid, []))


def _host_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


class CpuSampler:
    """Samples the local cluster's processes once a second in a thread, until stopped."""

    def __init__(self, record: ClusterRecord, interval: float = 1.0) -> None:
        self.name = record.name
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float], tuple[int, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _pids(self) -> dict[str, int]:
        rec = Registry().get(self.name)
        if rec is None:
            return {}
        return {CPU_ROLES[r]: pid for r, pid in rec.pids.items() if r in CPU_ROLES}

    def _run(self) -> None:
        while not self._stop.is_set():
            # Read every time: the run starts its worker after the sampler, and a record can
            # still hold the pid of a worker an earlier run stopped.
            pids = self._pids()
            kids = _children()
            now = {
                role: cpu
                for role, pid in pids.items()
                if (cpu := _tree_cpu(pid, kids)) is not None
            }
            self.samples.append((time.time(), now, _host_ticks()))
            self._stop.wait(self.interval)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def window(self, lo: float, hi: float) -> StepCpu:
        """CPU between the samples nearest lo and hi."""
        inside = [s for s in self.samples if lo <= s[0] <= hi]
        if len(inside) < 2:
            return StepCpu()
        (t0, first, host0), (t1, last, host1) = inside[0], inside[-1]
        span = t1 - t0
        by_role = {
            role: round(100 * (last[role] - first[role]) / span, 1)
            for role in last
            if role in first
        }
        busy, total = host1[0] - host0[0], host1[1] - host0[1]
        return StepCpu(
            by_role=by_role,
            host_busy_pct=round(100 * busy / total, 1) if total else 0.0,
            cores=os.cpu_count() or 1,
        )


def limit(cpu: StepCpu, single_threaded: frozenset[str] = frozenset({"worker"})) -> str:
    """What ran out first in a step, from its CPU: the host's cores when they were nearly all
    busy, else the process closest to its own ceiling (one core for the Python worker's
    event loop, every core for the others)."""
    if not cpu.by_role:
        return "unknown (no CPU samples)"
    if cpu.host_busy_pct >= 90:
        ours = sum(cpu.by_role.values())
        rest = max(0.0, cpu.host_busy_pct * cpu.cores - ours)
        # "rest" is everything else on the host: the load generator and any other work.
        return (
            f"host CPU ({cpu.host_busy_pct:.0f}% of {cpu.cores} cores; "
            f"cluster {ours:.0f}%, rest {rest:.0f}%)"
        )

    def headroom(role: str) -> float:
        ceiling = 100.0 if role in single_threaded else 100.0 * cpu.cores
        return cpu.by_role[role] / ceiling

    top = max(cpu.by_role, key=headroom)
    return f"{top} ({cpu.by_role[top]:.0f}% of a core)"


def attach_cpu(result: RunReport, shape: StepShape, sampler: CpuSampler) -> None:
    """Give each capacity step of `result` the CPU sampled over its settled part, and what
    limited it (the same windows the step's actions/s come from)."""
    cap = result.capacity
    if cap is None:
        return
    windows = {w.step: w for w in step_windows(Path(result.out_dir), shape)}
    for row in cap.steps:
        w = windows[row.step]
        if w.ready_at is None:
            continue  # the harness was not ready: no window
        hi = w.ended_at if w.ended_at is not None else w.ready_at + shape.step_seconds
        row.cpu = sampler.window(w.ready_at + 0.25 * (hi - w.ready_at), hi)
        row.cpu.limit = limit(row.cpu)
    by_step = {row.step: row for row in cap.steps}
    if cap.best_step is not None:
        cap.best_step = by_step[cap.best_step.step]
    if cap.breaking_step is not None:
        cap.breaking_step = by_step[cap.breaking_step.step]
