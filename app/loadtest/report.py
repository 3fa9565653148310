"""Load-test reports: Locust's CSVs read back, SLO gates, a rich summary and a one-file HTML
page with inline SVG plots (actions/s, latency percentiles over time, failures, actions by
type). No plotting library: the charts are a few dozen lines of SVG. Every function here reads
the typed models of app/loadtest/models.py."""

from __future__ import annotations

import csv
import html
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from app.loadtest.models import ActionRate, Comparison, Gate, HistoryRow, RunReport, StatsRow


def _num(value: str | None) -> float | None:
    if value in (None, "", "N/A"):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except ValueError:
        return None


def _csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of one of Locust's CSV files, or none when Locust did not write it."""
    if not path.exists():
        return []
    with path.open() as fh:
        return list(csv.DictReader(fh))


def read_stats(prefix: Path) -> list[StatsRow]:
    """Rows of Locust's <prefix>_stats.csv: one per request name, plus Aggregated."""
    return [
        StatsRow(
            type=row["Type"],
            name=row["Name"],
            requests=int(row["Request Count"]),
            failures=int(row["Failure Count"]),
            p50_ms=_num(row.get("50%")),
            p95_ms=_num(row.get("95%")),
            p99_ms=_num(row.get("99%")),
            avg_ms=_num(row.get("Average Response Time")),
            rps=_num(row.get("Requests/s")) or 0.0,
        )
        for row in _csv_rows(Path(f"{prefix}_stats.csv"))
    ]


def read_history(prefix: Path) -> list[HistoryRow]:
    """Rows of Locust's <prefix>_stats_history.csv (one per second and request name)."""
    return [
        HistoryRow(
            t=float(row["Timestamp"]),
            users=int(row["User Count"]),
            name=row["Name"],
            rps=_num(row["Requests/s"]) or 0.0,
            fps=_num(row["Failures/s"]) or 0.0,
            p50_ms=_num(row.get("50%")),
            p95_ms=_num(row.get("95%")),
            p99_ms=_num(row.get("99%")),
            total_requests=int(row["Total Request Count"]),
            total_failures=int(row["Total Failure Count"]),
        )
        for row in _csv_rows(Path(f"{prefix}_stats_history.csv"))
    ]


# ---------------------------------------------------------------------------------------------
# SLO gates


def slo_gates(
    stats: Sequence[StatsRow],
    operations: Iterable[str],
    *,
    p95_ms: float,
    failure_ratio: float,
) -> list[Gate]:
    """Per business operation: it succeeded at least once, and its p95 against the SLO; then
    the failure ratio across them.

    An operation that never succeeded fails its gate whatever the failure SLO allows: a run
    whose operations all failed (or never ran) has nothing to vouch for.
    """
    ops = list(dict.fromkeys(operations))
    by_name = {r.name: r for r in stats if r.name in ops and r.name != "Aggregated"}
    gates = []
    for name in ops:
        row = by_name.get(name)
        requests, failures = (row.requests, row.failures) if row else (0, 0)
        gates.append(
            Gate(
                name=f"{name} completed",
                limit=1,
                measured=float(requests - failures),
                passed=requests - failures >= 1,
                detail=f"{requests - failures} successful of {requests}",
            )
        )
    for row in by_name.values():
        p95 = row.p95_ms
        gates.append(
            Gate(
                name=f"p95 {row.name} (ms)",
                limit=p95_ms,
                measured=p95,
                passed=p95 is not None and p95 <= p95_ms,
                detail=f"p95 {p95} ms against {p95_ms} ms",
            )
        )
    requests = sum(r.requests for r in by_name.values())
    failures = sum(r.failures for r in by_name.values())
    ratio = failures / requests if requests else 1.0
    gates.append(
        Gate(
            name="failure ratio",
            limit=failure_ratio,
            measured=ratio,
            passed=ratio <= failure_ratio and ratio < 1.0,
            detail=f"{failures} failed of {requests}",
        )
    )
    return gates


def accounting_gates(rows: Sequence[Comparison], tolerance_pct: float) -> list[Gate]:
    """The server's count against what explains it: every counted type explained, and every
    compared type within the tolerance. No rows (no metrics URL): no accounting, no gates."""
    if not rows:
        return []
    unexplained = [r.action_type for r in rows if r.flagged and r.expected is None]
    apart = [r for r in rows if r.flagged and r.expected is not None]
    worst = max((r.diff_pct or 0.0 for r in apart), default=0.0)
    return [
        Gate(
            name="server-counted types explained",
            limit=0,
            measured=float(len(unexplained)),
            passed=not unexplained,
            detail=f"unexplained: {', '.join(unexplained)}" if unexplained else "all explained",
            kind="accounting",
        ),
        Gate(
            name=f"server vs histories within {tolerance_pct:g}%",
            limit=tolerance_pct,
            measured=worst,
            passed=not apart,
            detail=", ".join(f"{r.action_type} {r.diff_pct}%" for r in apart) or "all within",
            kind="accounting",
        ),
    ]


# ---------------------------------------------------------------------------------------------
# Action series


def action_rates(series: Sequence[tuple[float, Mapping[str, float]]]) -> list[ActionRate]:
    """Total and per-type actions/s for each interval between two scrapes (3 decimals)."""
    out = []
    for (t0, c0), (t1, c1) in zip(series, series[1:], strict=False):
        dt = t1 - t0
        if dt <= 0:
            continue
        per = {k: (c1.get(k, 0) - c0.get(k, 0)) / dt for k in set(c0) | set(c1)}
        out.append(
            ActionRate(
                t=t1,
                actions_per_s=round(sum(per.values()), 3),
                by_type={k: round(v, 3) for k, v in per.items()},
            )
        )
    return out


def sustained_rate(rates: Sequence[ActionRate], start: float, end: float) -> float:
    """Median actions/s over the intervals that end inside (start, end]."""
    inside = [r.actions_per_s for r in rates if start < r.t <= end]
    return statistics.median(inside) if inside else 0.0


# ---------------------------------------------------------------------------------------------
# Summary table (rich)


def summary_table(report: RunReport) -> Table:
    table = Table(title=f"load test: {report.scenario} on {report.target}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    s = report.summary
    rows = [
        ("users / duration", f"{report.settings.users} / {report.duration_s:.0f} s"),
        ("business operations", f"{s.operations}"),
        ("operations/s", f"{s.operations_per_s:.1f}"),
        ("billable actions (server)", f"{s.actions_total}"),
        ("actions/s (average)", f"{s.actions_per_s:.1f}"),
        ("actions/s (sustained median)", f"{s.actions_per_s_sustained:.1f}"),
        ("actions per operation", f"{s.actions_per_operation:.2f}"),
        ("p50 / p95 / p99 (ms)", f"{s.p50_ms} / {s.p95_ms} / {s.p99_ms}"),
        ("failures", f"{s.failures} ({s.failure_ratio:.2%})"),
        (
            "accounting vs histories",
            "within tolerance" if not s.accounting_flags else f"FLAGGED: {s.accounting_flags}",
        ),
        ("SLO gates", "PASS" if report.passed else "FAIL"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    return table


def accounting_table(report: RunReport) -> Table:
    table = Table(title="billable actions by type: server vs expected")
    for col in ("action_type", "server", "expected", "source", "diff %", "flag"):
        table.add_column(col, justify="left" if col in ("action_type", "source") else "right")
    for row in report.accounting:
        table.add_row(
            row.action_type,
            str(row.server),
            "-" if row.expected is None else str(row.expected),
            row.source,
            "-" if row.diff_pct is None else f"{row.diff_pct:.2f}",
            f"> {report.settings.tolerance_pct:g}%" if row.flagged else "",
        )
    return table


# ---------------------------------------------------------------------------------------------
# SVG charts

_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
_W, _H, _PAD = 720, 260, 48


def _title(title: str) -> str:
    return (
        f'<text x="{_W / 2}" y="18" text-anchor="middle" font-size="14">{html.escape(title)}</text>'
    )


def svg_lines(title: str, lines: Mapping[str, Sequence[tuple[float, float]]], y_label: str) -> str:
    """A line chart; x is seconds since the start of the run."""
    points = [p for pts in lines.values() for p in pts]
    if not points:
        return f"<p><em>{html.escape(title)}: no data</em></p>"
    xmax = max(p[0] for p in points) or 1.0
    ymax = max(p[1] for p in points) or 1.0
    ymax *= 1.1

    def xy(x: float, y: float) -> str:
        return (
            f"{_PAD + x / xmax * (_W - 2 * _PAD):.1f},{_H - _PAD - y / ymax * (_H - 2 * _PAD):.1f}"
        )

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'role="img" aria-label="{html.escape(title)}">',
        _title(title),
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#888"/>',
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#888"/>',
        f'<text x="{_PAD - 4}" y="{_PAD}" text-anchor="end" font-size="10">{ymax:.0f}</text>',
        f'<text x="{_PAD - 4}" y="{_H - _PAD}" text-anchor="end" font-size="10">0</text>',
        f'<text x="{_W - _PAD}" y="{_H - _PAD + 14}" text-anchor="end" font-size="10">'
        f"{xmax:.0f} s</text>",
        f'<text x="12" y="{_H / 2}" font-size="10" transform="rotate(-90 12 {_H / 2})">'
        f"{html.escape(y_label)}</text>",
    ]
    for i, (name, pts) in enumerate(lines.items()):
        color = _COLORS[i % len(_COLORS)]
        if pts:
            path = " ".join(xy(x, y) for x, y in pts)
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}"/>'
            )
        parts.append(
            f'<text x="{_W - _PAD + 4 - 150}" y="{_PAD + 12 * i}" font-size="10" '
            f'fill="{color}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def svg_bars(title: str, values: Mapping[str, float]) -> str:
    if not values:
        return f"<p><em>{html.escape(title)}: no data</em></p>"
    vmax = max(values.values()) or 1.0
    bar_h, label_w = 18, 300
    height = 30 + bar_h * len(values) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}">',
        _title(title),
    ]
    for i, (name, v) in enumerate(sorted(values.items(), key=lambda kv: -kv[1])):
        y = 30 + i * bar_h
        w = v / vmax * (_W - label_w - 60)
        parts += [
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end" font-size="11">'
            f"{html.escape(name)}</text>",
            f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{bar_h - 4}" '
            f'fill="{_COLORS[i % len(_COLORS)]}"/>',
            f'<text x="{label_w + w + 4:.1f}" y="{y + 12}" font-size="11">{v:g}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def _table_html(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: RunReport, history: Sequence[HistoryRow]) -> str:
    """The self-contained HTML report (inline CSS and SVG, no external assets)."""
    t0 = report.started_at
    rates = report.action_series
    total = [(r.t - t0, r.actions_per_s) for r in rates if r.t >= t0]
    kinds: Counter[str] = Counter()
    for r in rates:
        kinds.update({k: v for k, v in r.by_type.items() if v > 0})
    top = [k for k, _ in kinds.most_common(5)]
    action_lines: dict[str, list[tuple[float, float]]] = {"all actions": total}
    for k in top:
        action_lines[k] = [(r.t - t0, r.by_type.get(k, 0.0)) for r in rates if r.t >= t0]
    agg = [h for h in history if h.name == "Aggregated" and h.t >= t0]
    latency = {
        "p50": [(h.t - t0, h.p50_ms) for h in agg if h.p50_ms is not None],
        "p95": [(h.t - t0, h.p95_ms) for h in agg if h.p95_ms is not None],
        "p99": [(h.t - t0, h.p99_ms) for h in agg if h.p99_ms is not None],
    }
    throughput = {
        "requests/s": [(h.t - t0, h.rps) for h in agg],
        "failures/s": [(h.t - t0, h.fps) for h in agg],
    }
    s = report.summary
    settings = report.settings
    summary_rows = [
        ("scenario", report.scenario),
        ("target", report.target),
        ("users / spawn rate", f"{settings.users} / {settings.spawn_rate}"),
        ("duration (s)", f"{report.duration_s:.1f}"),
        ("business operations", s.operations),
        ("operations/s", f"{s.operations_per_s:.2f}"),
        ("billable actions (server)", s.actions_total),
        (
            "actions/s average / sustained",
            f"{s.actions_per_s:.2f} / {s.actions_per_s_sustained:.2f}",
        ),
        ("actions per operation", f"{s.actions_per_operation:.3f}"),
        ("latency p50 / p95 / p99 (ms)", f"{s.p50_ms} / {s.p95_ms} / {s.p99_ms}"),
        ("failures", f"{s.failures} ({s.failure_ratio:.2%})"),
        ("workflow runs in histories", report.histories.runs),
        ("SLO gates", "PASS" if report.passed else "FAIL"),
    ]
    acct_rows = [
        (
            r.action_type,
            r.server,
            "-" if r.expected is None else r.expected,
            r.source,
            "-" if r.diff_pct is None else f"{r.diff_pct:.2f}",
            f"FLAG > {settings.tolerance_pct:g}%" if r.flagged else "",
        )
        for r in report.accounting
    ]
    gate_rows = [
        (g.name, g.limit, g.measured, "pass" if g.passed else "FAIL", g.detail)
        for g in report.gates
    ]
    stat_rows = [
        (r.name, r.requests, r.failures, r.p50_ms, r.p95_ms, r.p99_ms, r.rps)
        for r in report.locust_stats
    ]
    harness = report.harness.model_dump()
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:960px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        ".pass{color:#2ca02c}.fail{color:#d62728}"
    )
    verdict = '<b class="pass">PASS</b>' if report.passed else '<b class="fail">FAIL</b>'
    return "".join(
        [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>haul load test: {html.escape(report.scenario)}</title>",
            f"<style>{style}</style></head><body>",
            f"<h1>haul load test: {html.escape(report.scenario)} {verdict}</h1>",
            f"<p>{html.escape(report.description)}</p>",
            "<h2>Summary</h2>",
            _table_html(("measure", "value"), summary_rows),
            "<h2>Billable actions per second</h2>",
            svg_lines("billable actions/s (server counter)", action_lines, "actions/s"),
            "<h2>Latency percentiles over time</h2>",
            svg_lines("latency (ms), all requests", latency, "ms"),
            "<h2>Requests and failures</h2>",
            svg_lines("requests/s and failures/s", throughput, "per second"),
            "<h2>Actions by type</h2>",
            svg_bars("billable actions by action_type", dict(report.server_actions)),
            "<h2>Server count vs workflow histories</h2>",
            _table_html(
                ("action_type", "server", "expected", "source", "diff %", "flag"), acct_rows
            ),
            "<h2>SLO gates</h2>",
            _table_html(("gate", "limit", "measured", "result", "detail"), gate_rows),
            "<h2>Locust statistics</h2>",
            _table_html(("name", "requests", "failures", "p50", "p95", "p99", "req/s"), stat_rows),
            "<h2>Harness</h2>",
            _table_html(("measure", "value"), sorted((k, v) for k, v in harness.items())),
            "</body></html>",
        ]
    )
