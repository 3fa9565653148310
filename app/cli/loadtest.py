"""`haul loadtest run|capacity|ceiling` and `haul cost`.

Load tests change nothing but the target namespace's workload: they start workflows there (and,
for a local cluster with no worker, start a `haul worker` process and stop it afterwards).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from app.loadtest import cost as cost_model
from app.loadtest import report, scenarios
from app.loadtest.models import CeilingReport, ContenderRun, RunReport
from app.loadtest.settings import LoadSettings, RunSettings, StepShape

if TYPE_CHECKING:
    from app.loadtest.runner import Target

T = TypeVar("T")

app = typer.Typer(
    help="Load tests in billable actions: Locust scenarios, capacity steps, the asyncio ceiling.",
    no_args_is_help=True,
)
console = Console()

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


class SLOFailed(click.ClickException):
    """An SLO gate failed: exit code 1, with the failed gates named.

    A ClickException rather than typer.Exit: `haul`'s entry point runs click with
    standalone_mode=False, where an Exit's code is returned and would be lost.
    """

    exit_code = 1


def parse_duration(text: str) -> float:
    """`30`, `30s`, `2m`, `1h` -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration; use e.g. 30s, 2m or 1h")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


TARGET = typer.Option(
    "default",
    "--target",
    envvar="HAUL_LT_TARGET",
    help="A local cluster NAME (haul stack), an envconfig profile NAME, or HOST:PORT.",
)
NAMESPACE = typer.Option(None, help="Namespace (default: the cluster's app namespace, haul).")
METRICS = typer.Option(
    None,
    "--metrics-url",
    envvar="HAUL_LT_METRICS_URL",
    help="The server's Prometheus /metrics URL (known for local clusters), or "
    "dns+http://HEADLESS-SERVICE:9090/metrics to sum every frontend pod; without it there is "
    "no server-side action accounting.",
)
OUT = typer.Option(Path("loadtest-reports"), "--out", help="Directory for reports.")
SLO_P95 = typer.Option(2000.0, "--slo-p95-ms", help="SLO: p95 of each business operation.")
SLO_FAIL = typer.Option(0.01, "--slo-failure-ratio", help="SLO: failed / all operations (below 1).")
EXPECT_WORKERS = typer.Option(
    0,
    help="Distributed: be the master of this many `haul loadtest locust-worker` processes "
    "(on this host or others) and run no users here.",
)
MASTER_BIND_HOST = typer.Option(
    "127.0.0.1",
    envvar="HAUL_LT_MASTER_BIND_HOST",
    help="Distributed: the address workers connect to (0.0.0.0 for workers on other hosts).",
)
MASTER_BIND_PORT = typer.Option(5557, help="Distributed: the port workers connect to.")
WORKERS_MAX_WAIT = typer.Option(
    "2m", help="Distributed: give up when the workers have not all connected by then."
)
WORKER = typer.Option(
    True,
    "--worker/--no-worker",
    help="For a local cluster with no live worker, start `haul worker` for the run.",
)


def _scenario(name: str) -> str:
    try:
        return scenarios.get(name).name
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _valid(build: Callable[[], T]) -> T:
    """Build a settings model from options: a value it refuses is a usage error."""
    try:
        return build()
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise typer.BadParameter("; ".join(problems)) from None


async def _with_worker(target: Target, use_worker: bool, body: Callable[[], Awaitable[T]]) -> T:
    from app.core.procs import stop_pid
    from app.loadtest.runner import ensure_worker

    pid = await asyncio.to_thread(ensure_worker, target) if use_worker else None
    try:
        return await body()
    finally:
        if pid:
            stop_pid(pid)


def _print_run(result: RunReport) -> None:
    console.print(report.summary_table(result))
    if result.accounting:
        console.print(report.accounting_table(result))
    for gate in result.gates:
        mark = "[green]pass[/green]" if gate.passed else "[red]FAIL[/red]"
        console.print(f"  {mark} {gate.name}: {gate.detail}")
    console.print(f"report: {result.files.html}")


@app.command("run")
def run(
    scenario: str = typer.Option(
        "start_and_complete", help=f"One of: {', '.join(scenarios.SCENARIOS)}."
    ),
    users: int = typer.Option(10, "--users", "-u", help="Concurrent Locust users."),
    spawn_rate: float = typer.Option(10.0, "--spawn-rate", "-r", help="Users started per second."),
    duration: str = typer.Option("30s", "--duration", "-t", help="Run time (30s, 2m, ...)."),
    target: str = TARGET,
    namespace: str | None = NAMESPACE,
    metrics_url: str | None = METRICS,
    out: Path = OUT,
    slo_p95_ms: float = SLO_P95,
    slo_failure_ratio: float = SLO_FAIL,
    entities: int = typer.Option(10, help="signal_fan_in: entities the bursts land on."),
    burst: int = typer.Option(5, help="signal_fan_in: signal-with-starts per burst."),
    wait: float = typer.Option(0.0, help="Seconds a user waits between operations."),
    processes: int = typer.Option(1, help="Locust processes on this machine (--processes)."),
    expect_workers: int = EXPECT_WORKERS,
    master_bind_host: str = MASTER_BIND_HOST,
    master_bind_port: int = MASTER_BIND_PORT,
    workers_max_wait: str = WORKERS_MAX_WAIT,
    web: bool = typer.Option(False, "--web", help="Start Locust's web UI instead of headless."),
    web_port: int = typer.Option(8089, help="Port of the web UI (127.0.0.1)."),
    worker: bool = WORKER,
) -> None:
    """Run one scenario under Locust and report it in billable actions.

    Writes Locust's CSV and JSON, report.json and a self-contained report.html under --out,
    prints a summary, and compares the server's action counts with the run's workflow
    histories per action_type (flagging differences over 2%). Exits 1 when an SLO gate fails.
    """
    from app.loadtest.runner import resolve_target, run_load

    settings = _valid(
        lambda: RunSettings(
            scenario=_scenario(scenario),
            users=users,
            spawn_rate=spawn_rate,
            duration=parse_duration(duration),
            out_dir=out,
            slo_p95_ms=slo_p95_ms,
            slo_failure_ratio=slo_failure_ratio,
            load=_valid(lambda: LoadSettings(entities=entities, burst=burst, wait=wait)),
            processes=processes,
            expect_workers=expect_workers,
            master_bind_host=master_bind_host,
            master_bind_port=master_bind_port,
            workers_max_wait=parse_duration(workers_max_wait),
            web=web,
            web_port=web_port,
        )
    )
    tgt = resolve_target(target, namespace=namespace, metrics_url=metrics_url)
    if web:
        console.print(f"Locust UI on http://127.0.0.1:{web_port}; Ctrl-C ends the run")
    result = asyncio.run(_with_worker(tgt, worker, lambda: run_load(tgt, settings)))
    _print_run(result)
    if not result.passed:
        raise SLOFailed(f"gate(s) failed: {', '.join(result.failed_gates())}")


@app.command("locust-worker")
def locust_worker(
    master_host: str = typer.Option(
        "127.0.0.1", envvar="HAUL_LT_MASTER_HOST", help="Host of the `run --expect-workers` master."
    ),
    master_port: int = typer.Option(5557, envvar="HAUL_LT_MASTER_PORT", help="Its port."),
    runs: int = typer.Option(0, help="Serve this many runs, then exit (0: until stopped)."),
) -> None:
    """A Locust worker for distributed runs: joins each `haul loadtest run --expect-workers N`
    master, takes the run's target and settings from it, and sends its files back.

    Serves run after run (a fresh Locust process each) until SIGTERM or Ctrl-C.
    """
    from app.loadtest.locust_worker import serve

    served = serve(master_host, master_port, runs)
    console.print(f"served {served} run(s)")


NOT_READY = "[yellow]harness not ready[/yellow]"


@app.command("capacity")
def capacity(
    scenario: str = typer.Option("start_and_complete", help="Scenario to step up."),
    start_users: int = typer.Option(5, help="Users in the first step."),
    step_users: int = typer.Option(5, help="Users added per step."),
    steps: int = typer.Option(5, help="Number of steps."),
    step_duration: str = typer.Option("20s", "--step-duration", help="Length of each step."),
    spawn_rate: float = typer.Option(50.0, help="Users started per second within a step."),
    ready_timeout: str = typer.Option(
        "120s",
        "--ready-timeout",
        help="How long a step may wait for its users to all run (its clock starts then); a "
        "step still waiting is reported as the harness not ready and fails the command.",
    ),
    target: str = TARGET,
    namespace: str | None = NAMESPACE,
    metrics_url: str | None = METRICS,
    out: Path = OUT,
    slo_p95_ms: float = SLO_P95,
    slo_failure_ratio: float = SLO_FAIL,
    expect_workers: int = EXPECT_WORKERS,
    master_bind_host: str = MASTER_BIND_HOST,
    master_bind_port: int = MASTER_BIND_PORT,
    workers_max_wait: str = WORKERS_MAX_WAIT,
    worker: bool = WORKER,
    spec: Path | None = typer.Option(
        None,
        "--spec",
        help="The target's ClusterSpec YAML, for its pool sizes (a local cluster's is known).",
    ),
) -> None:
    """Raise load step by step (a Locust LoadTestShape) and report the highest sustained
    billable actions/s within the SLOs, and the step where they broke, beside the server's
    configuration (history shards, stores, pool sizes). On a local cluster each step also
    shows the CPU of the server, its database and the worker, and what limited it. With
    --expect-workers N, the steps' users are spread over N `locust-worker` processes."""
    from app.loadtest import server_info
    from app.loadtest.runner import resolve_target, run_load
    from app.stack.spec import load_spec

    seconds = parse_duration(step_duration)
    shape = _valid(
        lambda: StepShape(
            step_start=start_users,
            step_users=step_users,
            steps=steps,
            step_seconds=seconds,
            spawn_rate=spawn_rate,
            ready_seconds=parse_duration(ready_timeout),
        )
    )
    settings = _valid(
        lambda: RunSettings(
            scenario=_scenario(scenario),
            users=shape.users(shape.steps - 1),
            spawn_rate=spawn_rate,
            duration=seconds * steps,
            out_dir=out,
            slo_p95_ms=slo_p95_ms,
            slo_failure_ratio=slo_failure_ratio,
            load=LoadSettings(shape=shape),
            expect_workers=expect_workers,
            master_bind_host=master_bind_host,
            master_bind_port=master_bind_port,
            workers_max_wait=parse_duration(workers_max_wait),
        )
    )
    tgt = resolve_target(target, namespace=namespace, metrics_url=metrics_url)
    cluster_spec = load_spec(spec) if spec else None

    async def measure() -> RunReport:
        result = await run_load(tgt, settings)
        result.server = await server_info.describe(await tgt.client(), tgt.record, cluster_spec)
        return result

    sampler = server_info.CpuSampler(tgt.record) if tgt.record else None
    with sampler or contextlib.nullcontext():
        result = asyncio.run(_with_worker(tgt, worker, measure))
    cap = result.capacity
    assert cap is not None  # a run with a shape always has its steps evaluated
    if sampler is not None:
        server_info.attach_cpu(result, shape, sampler)
    result.write()
    if result.server is not None:
        config = Table(title="server configuration")
        config.add_column("")
        config.add_column("")
        for key, value in result.server.rows():
            config.add_row(key, value)
        console.print(config)
    table = Table(title=f"capacity: {result.scenario} on {result.target}")
    for col in ("step", "users", "actions/s", "operations", "p95 ms", "failure ratio", "SLO"):
        table.add_column(col, justify="right")
    for row in cap.steps:
        if not row.harness_ready:
            table.add_row(str(row.step), str(row.users), "", "", "", "", NOT_READY)
            continue
        table.add_row(
            str(row.step),
            str(row.users),
            f"{row.actions_per_s:.1f}",
            str(row.operations),
            str(row.p95_ms),
            f"{row.failure_ratio:.2%}",
            "[green]held[/green]" if row.within_slo else "[red]broke[/red]",
        )
    console.print(table)
    roles = sorted({r for row in cap.steps if row.cpu for r in row.cpu.by_role})
    if roles:
        cpu_table = Table(title="CPU by process, % of one core (settled part of each step)")
        for col in ("step", *roles, "host busy %", "limit"):
            cpu_table.add_column(col, justify="right")
        for row in cap.steps:
            cpu = row.cpu
            if cpu is None:
                continue
            cpu_table.add_row(
                str(row.step),
                *[f"{cpu.by_role[r]:.0f}" if r in cpu.by_role else "" for r in roles],
                f"{cpu.host_busy_pct:.0f}",
                cpu.limit,
            )
        table = cpu_table
    console.print(table)
    console.print(
        f"highest sustained within SLOs: {cap.max_sustained_actions_per_s:.1f} actions/s"
        + (f" at {cap.best_step.users} users" if cap.best_step else "")
    )
    broke = cap.breaking_step
    console.print(
        f"broke at step {broke.step} ({broke.users} users): the limit"
        if broke
        else "did not break within the steps run; raise --steps or --step-users"
    )
    console.print(
        f"report: {result.files.html}; cost: haul cost --capacity-report {result.files.report_json}"
    )
    # A capacity run is meant to break; it fails only when no step held its SLOs or the
    # server's count is not explained (the figures would then mean nothing).
    failed = [g.name for g in result.gates if g.kind == "accounting" and not g.passed]
    if cap.best_step is None:
        failed.insert(0, "no step held the SLOs")
    unready = [row for row in cap.steps if not row.harness_ready]
    if unready:
        # Not a figure of the cluster: the load generator could not run the step's users.
        failed.insert(
            0,
            f"harness not ready at step(s) {', '.join(str(r.step) for r in unready)}: their "
            f"users did not all run within {shape.ready_seconds:.0f}s (raise --ready-timeout, "
            "or give the load generator more CPU or workers)",
        )
    if failed:
        raise SLOFailed(f"capacity: {', '.join(failed)}")


@app.command("ceiling")
def ceiling(
    duration: str = typer.Option("20s", "--duration", "-t", help="Length of each contender's run."),
    concurrency: int = typer.Option(
        20, help="Workflows in flight: Go goroutines, bare coroutines, and Locust users."
    ),
    rounds: int = typer.Option(
        3,
        help="Rounds of go, bare, locust in turn; figures and ratios are medians of rounds "
        "(on a shared machine load drifts between runs, and interleaving spreads it).",
    ),
    target: str = typer.Option(
        "default",
        "--target",
        envvar="HAUL_LT_TARGET",
        help="A local cluster NAME (haul stack): the Go reference connects without TLS.",
    ),
    namespace: str | None = NAMESPACE,
    metrics_url: str | None = METRICS,
    out: Path = OUT,
    worker: bool = WORKER,
    goref_src: Path | None = typer.Option(
        None,
        "--goref-src",
        envvar="HAUL_LT_GOREF_SRC",
        help="The Go reference's source (default: loadtest/goref of this checkout); built "
        "with `go build` once per source hash, cached under HAUL_CACHE.",
    ),
    cross: bool = typer.Option(
        False,
        "--cross",
        help="Also run the bare starter on the Go worker and the Go starter on haul's worker, "
        "to split a bare/Go gap into the starter's share and the worker's.",
    ),
) -> None:
    """Run start_and_complete with three contenders against one local cluster, interleaved:
    Temporal's Go SDK starter and worker (the reference), the bare asyncio starter with haul's
    worker, and the Locust harness with haul's worker.

    Prints workflows/s, billable actions/s (the server's counter, checked against histories),
    p50/p95 and each worker's and starter's CPU seconds per 1,000 workflows, as medians of the
    rounds, and the ratios Locust/bare, bare/Go and Python worker CPU/Go worker CPU. Writes
    ceiling.json (a CeilingReport) and each Locust run's report under --out. Changes nothing
    but the namespace's workload; the Go worker it starts is stopped at the end. Exits 1 when
    a server count is not explained by the histories.
    """
    from app.loadtest.ceiling import Ceiling, diagnose
    from app.loadtest.goref import binary, start_worker
    from app.loadtest.runner import ensure_worker, resolve_target
    from app.stack.builds import BuildError
    from app.stack.registry import Registry

    seconds = parse_duration(duration)
    if concurrency < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--concurrency")
    tgt = resolve_target(target, namespace=namespace, metrics_url=metrics_url)
    if tgt.record is None:
        raise typer.BadParameter(
            f"{target!r} is not a local cluster; the ceiling runs its Go reference and worker "
            "beside a local one (`haul stack up --name NAME`)",
            param_hint="--target",
        )
    try:
        exe = binary(goref_src)  # before any load: a broken build fails fast
    except BuildError as exc:
        raise click.ClickException(f"the Go reference could not be built: {exc}") from None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    run_dir = out / f"ceiling-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)

    def show(one: ContenderRun) -> None:
        console.print(
            f"round {one.round} {one.contender}: {one.wf_per_s:.1f} wf/s, "
            f"{one.actions_per_s:.1f} actions/s, worker {one.worker_cpu_per_1k:.1f} "
            "CPU-s per 1,000 workflows"
        )

    async def body() -> tuple[CeilingReport, RunReport | None]:
        from app.core.procs import stop_pid

        started = await asyncio.to_thread(ensure_worker, tgt) if worker else None
        rec = Registry().get(tgt.label) or tgt.record
        py_pid = started or (rec.pids.get("worker") if rec and rec.running("worker") else None)
        go_pid = None
        try:
            if py_pid is None:
                raise click.ClickException(
                    f"cluster {tgt.label} has no haul worker to measure; drop --no-worker or "
                    f"start one (`haul worker --cluster {tgt.label}`)"
                )
            client = await tgt.client()
            address = client.service_client.config.target_host
            go_pid = await asyncio.to_thread(
                start_worker, exe, address, tgt.namespace, run_dir / "goref-worker.log"
            )
            run = Ceiling(
                tgt,
                concurrency=concurrency,
                duration=seconds,
                out=run_dir,
                go_binary=exe,
                python_worker_pid=py_pid,
                go_worker_pid=go_pid,
                address=address,
                cross=cross,
            )
            return await run.run(rounds, progress=show)
        finally:
            if go_pid:
                stop_pid(go_pid)
            if started:
                stop_pid(started)

    result, last_locust = asyncio.run(body())
    table = Table(
        title=f"ceiling: start_and_complete on {tgt.label}, {concurrency} in flight, "
        f"{seconds:g} s each, median of {result.rounds} round(s)"
    )
    cols = ["contender", "wf/s", "actions/s", "p50 ms", "p95 ms"]
    cols += ["worker CPU-s /1k wf", "starter CPU-s /1k wf", "counts vs histories"]
    for col in cols:
        table.add_column(col, justify="right")
    for contender, med in result.medians.items():
        bad = [r for r in result.runs if r.contender == contender and r.flagged()]
        table.add_row(
            contender,
            f"{med.wf_per_s:.1f}",
            f"{med.actions_per_s:.1f}",
            f"{med.p50_ms:.0f}" if med.p50_ms is not None else "-",
            f"{med.p95_ms:.0f}" if med.p95_ms is not None else "-",
            f"{med.worker_cpu_per_1k:.2f}",
            f"{med.starter_cpu_per_1k:.2f}",
            "[red]flagged[/red]" if bad else "[green]match[/green]",
        )
    console.print(table)
    console.print(
        "go: Go SDK starter and worker; bare: asyncio starter, haul worker; locust: Locust "
        "harness, haul worker"
        + (
            "; bare-on-go: asyncio starter, Go worker; go-on-haul: Go starter, haul worker"
            if cross
            else ""
        )
    )
    r = result.ratios

    def verdict(ok: bool) -> str:
        return "[green]meets[/green]" if ok else "[red]misses[/red]"

    console.print(
        f"Locust / bare = {r.locust_over_bare:.2f} ({verdict(r.locust_over_bare >= 0.9)} >= 0.9); "
        f"bare / Go = {r.bare_over_go:.2f} ({verdict(r.bare_over_go >= 0.9)} >= 0.9); "
        f"Python worker CPU / Go worker CPU = {r.python_worker_cpu_over_go:.2f} "
        f"({verdict(r.python_worker_cpu_over_go <= 2.0)} <= 2)"
    )
    if r.bare_starter_over_go_starter is not None and r.haul_worker_over_go_worker is not None:
        console.print(
            f"split of bare / Go: the bare starter on the Go worker = "
            f"{r.bare_starter_over_go_starter:.2f} of Go; the Go starter on haul's worker = "
            f"{r.haul_worker_over_go_worker:.2f} of Go"
        )
    h = result.host
    console.print(
        f"host: {h.cpus} CPUs, 1-minute load {h.loadavg_1m_start:.2f} at start and "
        f"{h.loadavg_1m_end:.2f} at end (other work on the host shows in every contender)"
    )
    bare = [x for x in result.runs if x.contender == "bare"]
    if last_locust is not None and bare and r.locust_over_bare < 0.9:
        for note in diagnose(bare[-1], last_locust):
            console.print(f"  - {note}")
    console.print(f"ceiling report: {result.out_dir / 'ceiling.json'}")
    problems = result.accounting_problems()
    if problems:
        raise SLOFailed(f"server counts not explained by histories: {'; '.join(problems)}")


def cost(
    actions_per_second: float | None = typer.Option(
        None, "--actions-per-second", help="Sustained billable actions/s one deployment holds."
    ),
    capacity_report: Path | None = typer.Option(
        None, "--capacity-report", help="A report.json from `haul loadtest capacity` (or run)."
    ),
    monthly_actions: float = typer.Option(1e9, help="Billable actions to carry per month."),
    peak_factor: float = typer.Option(1.0, help="Peak rate over the month's average rate."),
    eks_clusters: int = typer.Option(1, help="EKS control planes."),
    node: list[str] = typer.Option(
        [], "--node", help="EKS node group TYPE:COUNT (repeatable), e.g. m6i.2xlarge:3."
    ),
    rds_class: str | None = typer.Option(None, help="RDS Postgres class, e.g. db.r6g.xlarge."),
    multi_az: bool = typer.Option(True, "--multi-az/--single-az", help="RDS Multi-AZ."),
    rds_storage_gb: float = typer.Option(0.0, help="RDS gp3 storage (GB)."),
    scylla_node: list[str] = typer.Option(
        [], "--scylla-node", help="Scylla node group TYPE:COUNT (repeatable), e.g. i4i.2xlarge:3."
    ),
    ebs_gb: float = typer.Option(0.0, "--ebs-gb", help="EBS gp3 storage (GB)."),
    prices: Path | None = typer.Option(None, help="AWS price table (default: shipped)."),
    cloud_pricing: Path | None = typer.Option(None, help="Temporal Cloud price list."),
) -> None:
    """Monthly cost and $ per million billable actions, self-hosted vs Temporal Cloud.

    Reads prices from dated, cited data files (app/loadtest/data/); changes nothing.
    """
    if capacity_report is not None:
        try:
            rate = cost_model.capacity_from_report(capacity_report)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--capacity-report") from None
        measured = RunReport.read(capacity_report)
        source = Table(title=f"measured: {measured.scenario} on {measured.target}")
        source.add_column("")
        source.add_column("")
        source.add_row("sustained actions/s (one deployment)", f"{rate:,.1f}")
        best = measured.capacity.best_step if measured.capacity else None
        if best is not None:
            source.add_row("at", f"step {best.step}, {best.users} users, p95 {best.p95_ms} ms")
        for key, value in measured.server.rows() if measured.server else []:
            source.add_row(key, value)
        console.print(source)
    elif actions_per_second is not None:
        rate = actions_per_second
    else:
        raise typer.BadParameter("give --actions-per-second or --capacity-report")
    bom = cost_model.BillOfMaterials(
        eks_clusters=eks_clusters,
        nodes=[cost_model.NodeGroup.parse(n) for n in node],
        rds_class=rds_class,
        rds_multi_az=multi_az,
        rds_storage_gb=rds_storage_gb,
        scylla_nodes=[cost_model.NodeGroup.parse(n) for n in scylla_node],
        ebs_storage_gb=ebs_gb,
    )
    est = cost_model.estimate(
        rate,
        bom,
        monthly_actions=monthly_actions,
        peak_factor=peak_factor,
        prices=cost_model.load_aws_prices(prices),
        cloud_pricing=cost_model.load_cloud_pricing(cloud_pricing),
    )
    lines = Table(title="one self-hosted deployment, per month (USD)")
    lines.add_column("item")
    lines.add_column("USD/month", justify="right")
    for item, usd in est.lines.items():
        lines.add_row(item, f"{usd:,.2f}")
    console.print(lines)
    table = Table(title=f"{monthly_actions:,.0f} billable actions per month")
    table.add_column("")
    table.add_column("self-hosted", justify="right")
    table.add_column("Temporal Cloud", justify="right")
    table.add_row("monthly (USD)", f"{est.self_hosted_monthly:,.2f}", f"{est.cloud_monthly:,.2f}")
    table.add_row(
        "$ per million actions",
        f"{est.self_hosted_per_million:,.2f}",
        f"{est.cloud_per_million:,.2f}",
    )
    console.print(table)
    console.print(
        f"needs {est.required_actions_per_s:,.1f} actions/s (peak factor {peak_factor}); one "
        f"deployment holds {rate:,.1f}, so {est.deployments} deployment(s)"
    )
    console.print(
        f"savings ratio (Cloud / self-hosted): {est.savings_ratio:,.2f}x  "
        f"[dim](prices as of: AWS {est.aws_prices_as_of}, Temporal Cloud "
        f"{est.cloud_pricing_as_of})[/dim]"
    )
