"""What a load-test run measured: the typed report the runner writes to report.json, and that
the report writer, the CLI, the ceiling comparison and `haul cost` read back.

The per-process stats each Locust process leaves for the parent (`ProcessStats`) are typed
too, so both sides of that file agree on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from app.loadtest.settings import RunSettings


class Gate(BaseModel):
    """One gate: what was measured against its limit. SLO gates judge the load; accounting
    gates judge whether the server's count is explained (a capacity run keeps only those)."""

    name: str
    limit: float
    measured: float | None
    passed: bool
    detail: str
    kind: Literal["slo", "accounting"] = "slo"


class Comparison(BaseModel):
    """One action type: the server's count against what histories (or the client) explain."""

    action_type: str
    server: int
    expected: int | None
    source: Literal["history", "client", "server only", "unexplained"]
    diff_pct: float | None
    flagged: bool


class StatsRow(BaseModel):
    """One row of Locust's <prefix>_stats.csv: a request name, or Aggregated."""

    type: str
    name: str
    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    avg_ms: float | None
    rps: float


class HistoryRow(BaseModel):
    """One row of Locust's <prefix>_stats_history.csv: one second of one request name."""

    t: float
    users: int
    name: str
    rps: float
    fps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    total_requests: int
    total_failures: int


class OperationCounts(BaseModel):
    succeeded: int = 0
    failed: int = 0


class Lag(BaseModel):
    p50: float
    p95: float


class ProcessStats(BaseModel):
    """One Locust process's bridge counts (harness-<tag>.json), written when its users stop."""

    pid: int
    connect_calls: int
    max_in_flight: int
    completed_calls: int
    # Operations by request name, counted by the bridge: Locust stops recording while users
    # finish their last operation during the stop timeout.
    operations: dict[str, OperationCounts]
    queries_succeeded: int
    queries_failed: int
    submit_lag_ms: Lag
    wake_lag_ms: Lag
    cpu_seconds: float
    # From Locust's test start (users about to spawn) to the stats: the load's own CPU.
    load_cpu_seconds: float = 0.0


class HarnessStats(BaseModel):
    """Every Locust process of a run, merged."""

    processes: int = 0
    operations: dict[str, OperationCounts] = Field(default_factory=dict)
    connect_calls_per_process: list[int] = Field(default_factory=list)
    max_in_flight_per_process: list[int] = Field(default_factory=list)
    queries_succeeded: int = 0
    queries_failed: int = 0
    submit_lag_p95_ms: float = 0.0
    wake_lag_p95_ms: float = 0.0
    cpu_seconds: float = 0.0
    load_cpu_seconds: float = 0.0

    @classmethod
    def merge(cls, procs: Iterable[ProcessStats]) -> HarnessStats:
        procs = list(procs)
        if not procs:
            return cls()
        operations: dict[str, OperationCounts] = {}
        for p in procs:
            for name, counts in p.operations.items():
                mine = operations.setdefault(name, OperationCounts())
                mine.succeeded += counts.succeeded
                mine.failed += counts.failed
        return cls(
            processes=len(procs),
            operations=operations,
            connect_calls_per_process=[p.connect_calls for p in procs],
            max_in_flight_per_process=[p.max_in_flight for p in procs],
            queries_succeeded=sum(p.queries_succeeded for p in procs),
            queries_failed=sum(p.queries_failed for p in procs),
            submit_lag_p95_ms=round(max(p.submit_lag_ms.p95 for p in procs), 3),
            wake_lag_p95_ms=round(max(p.wake_lag_ms.p95 for p in procs), 3),
            cpu_seconds=round(sum(p.cpu_seconds for p in procs), 2),
            load_cpu_seconds=round(sum(p.load_cpu_seconds for p in procs), 2),
        )

    def succeeded(self, names: Iterable[str]) -> int:
        """Operations of these request names that the harness saw succeed."""
        return sum(self.operations.get(n, OperationCounts()).succeeded for n in names)


class Summary(BaseModel):
    operations: int
    # Throughput counts the operations that ended inside the load window; the ones finished
    # during the stop timeout count for actions per operation only.
    operations_in_window: int
    operations_per_s: float
    actions_total: int
    actions_per_s: float
    actions_per_s_sustained: float
    operations_harness: int
    actions_per_operation: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    all_requests_p95_ms: float | None
    failures: int
    failure_ratio: float
    accounting_flags: list[str]


class Histories(BaseModel):
    runs: int
    workflow_ids: int


class ActionRate(BaseModel):
    """Billable actions/s between two scrapes of the server's counter, ending at `t`."""

    t: float
    actions_per_s: float
    by_type: dict[str, float]


class StepCpu(BaseModel):
    """CPU over one capacity step: per process in % of one core, and the host's busy %."""

    by_role: dict[str, float] = Field(default_factory=dict)
    host_busy_pct: float = 0.0
    cores: int = 1
    limit: str = ""


class ServerConfig(BaseModel):
    """The server a load test ran against, as far as it can be known."""

    source: str
    server_version: str = ""
    shards: int | None = None
    persistence: str = ""
    visibility: str = ""
    persistence_pool: str = ""
    visibility_pool: str = ""

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("source", self.source),
            ("server version", self.server_version or "?"),
            ("history shards", str(self.shards) if self.shards else "?"),
            ("persistence", self.persistence or "?"),
            ("persistence pool", self.persistence_pool or "?"),
            ("visibility", self.visibility or "?"),
            ("visibility pool", self.visibility_pool or "?"),
        ]


class StepWindow(BaseModel):
    """One capacity step as the shape ran it (epoch seconds): asked for, its users all
    running (Locust reported spawning complete with the step's user count), and ended.
    `ready_at` None: the users never all ran within the shape's `ready_seconds`."""

    step: int
    users: int
    requested_at: float
    ready_at: float | None = None
    ended_at: float | None = None


class ShapeTimeline(BaseModel):
    """What the process that runs a capacity shape records for the parent, step by step."""

    steps: list[StepWindow] = Field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> ShapeTimeline | None:
        return cls.model_validate_json(path.read_text()) if path.exists() else None


class CapacityStep(BaseModel):
    step: int
    users: int
    actions_per_s: float
    # None when the harness was not ready: the step's users never all ran, so nothing it
    # counted says anything about the cluster.
    operations: int | None
    p95_ms: float | None
    failure_ratio: float
    within_slo: bool
    harness_ready: bool = True
    # Local clusters: each process's CPU over the step, and what limited it.
    cpu: StepCpu | None = None


class Capacity(BaseModel):
    """The steps of a capacity run; the capacity is the best passing step before the first
    failing one, which is the breaking step."""

    steps: list[CapacityStep]
    max_sustained_actions_per_s: float
    best_step: CapacityStep | None
    breaking_step: CapacityStep | None


class ReportFiles(BaseModel):
    locust_csv: list[str]
    locust_json: str
    html: str
    report_json: str


class RunReport(BaseModel):
    """One run of one scenario: its settings, what the server and histories counted, the SLO
    gates, Locust's statistics and the harness's own counts."""

    scenario: str
    description: str
    target: str
    namespace: str
    run_tag: str
    out_dir: Path
    started_at: float
    ended_at: float
    duration_s: float
    wall_s: float
    settings: RunSettings
    summary: Summary
    server_actions: dict[str, int]
    history_actions: dict[str, int]
    histories: Histories
    accounting: list[Comparison]
    gates: list[Gate]
    passed: bool
    locust_stats: list[StatsRow]
    harness: HarnessStats
    action_series: list[ActionRate]
    files: ReportFiles
    capacity: Capacity | None = None
    # The server it ran against: shards, stores and pool sizes (capacity runs).
    server: ServerConfig | None = None

    def failed_gates(self) -> list[str]:
        return [g.name for g in self.gates if not g.passed]

    def write(self) -> Path:
        """Write report.json; returns its path."""
        path = Path(self.files.report_json)
        path.write_text(self.model_dump_json(indent=2))
        return path

    @classmethod
    def read(cls, path: str | Path) -> RunReport:
        return cls.model_validate_json(Path(path).read_text())

    def sustained_actions_per_s(self) -> float:
        """What one deployment held: a capacity run's best step, else the run's median."""
        if self.capacity is not None:
            return self.capacity.max_sustained_actions_per_s
        return self.summary.actions_per_s_sustained


# ---------------------------------------------------------------------------------------------
# `haul loadtest ceiling`: three contenders on one server


# "bare-on-go" is the bare starter driving the Go worker, "go-on-haul" the Go starter driving
# haul's worker: the cross pairings (`haul loadtest ceiling --cross`) that split a bare/Go gap
# into the starter's share and the worker's.
Contender = Literal["go", "bare", "locust", "bare-on-go", "go-on-haul"]


class StarterResult(BaseModel):
    """What one starter process measured over its load window: the Go starter and the bare
    asyncio starter both write this JSON (latencies in ms, when each workflow finished in
    seconds since the window opened, and its own CPU from the window's start to its exit)."""

    workflows: int
    failures: int
    seconds: float
    latency_ms: list[float]
    done_at_s: list[float]
    cpu_seconds: float
    first_error: str | None = None


class ContenderRun(BaseModel):
    """One contender in one round: throughput, the server's action count and what the
    histories explain, latency, and each process's CPU per 1,000 workflows."""

    contender: Contender
    round: int
    run_tag: str
    # Every workflow the contender completed, also those in flight when its time ended.
    workflows: int
    failures: int
    # The load window (--duration): wf/s counts the workflows completed inside it, as a
    # Locust run does; the ones finished after it count for CPU and accounting only.
    seconds: float
    workflows_in_window: int
    wf_per_s: float
    actions: dict[str, int]
    actions_per_s: float
    history_actions: dict[str, int]
    history_runs: int
    accounting: list[Comparison]
    p50_ms: float | None
    p95_ms: float | None
    worker_cpu_s: float
    # Each starter's CPU from its load's start (connected, imports done) to its end; for
    # Locust, from its test start to its users' stop, summed over its processes.
    starter_cpu_s: float
    worker_cpu_per_1k: float
    starter_cpu_per_1k: float
    locust_report: Path | None = None

    def flagged(self) -> list[str]:
        return [c.action_type for c in self.accounting if c.flagged]


class ContenderMedians(BaseModel):
    """Medians over the rounds of one contender."""

    wf_per_s: float
    actions_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    worker_cpu_per_1k: float
    starter_cpu_per_1k: float


class CeilingRatios(BaseModel):
    """Each the median of its per-round ratios (rounds interleave, so drift cancels)."""

    locust_over_bare: float
    bare_over_go: float
    python_worker_cpu_over_go: float
    # With the cross pairings: the same Go worker under the bare starter against under the Go
    # starter (the starter's share of bare/Go), and the same Go starter on haul's worker
    # against on the Go worker (the worker's share).
    bare_starter_over_go_starter: float | None = None
    haul_worker_over_go_worker: float | None = None


class HostLoad(BaseModel):
    """How busy the machine was: the figures are only as quiet as the host."""

    cpus: int
    loadavg_1m_start: float
    loadavg_1m_end: float


class CeilingReport(BaseModel):
    """ceiling.json: every contender's run in every round, their medians and the ratios."""

    target: str
    namespace: str
    concurrency: int
    duration_s: float
    rounds: int
    go_binary: str
    runs: list[ContenderRun]
    medians: dict[Contender, ContenderMedians]
    ratios: CeilingRatios
    host: HostLoad
    out_dir: Path

    def accounting_problems(self) -> list[str]:
        return [
            f"round {r.round} {r.contender}: {', '.join(r.flagged())}"
            for r in self.runs
            if r.flagged()
        ]

    def write(self) -> Path:
        path = self.out_dir / "ceiling.json"
        path.write_text(self.model_dump_json(indent=2))
        return path

    @classmethod
    def read(cls, path: str | Path) -> CeilingReport:
        return cls.model_validate_json(Path(path).read_text())
