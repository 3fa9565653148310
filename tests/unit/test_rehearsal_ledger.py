"""The rehearsal's ledger: a clean ledger passes, and each kind of forged violation is named."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from app.loadtest.rehearsal_ledger import Kind, Ledger, Problem, Run, Sample, Violation

OLD, NEW = "old", "new"
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
EVERY = timedelta(seconds=2)


def clean() -> Ledger:
    """A migration that kept every promise: a task per cluster, an entity handed off from old
    to new (its events split over both runs), and a schedule moved at one boundary."""
    ledger = Ledger(schedule_every=EVERY)
    ledger.start("greeting|a", Kind.TASK)
    ledger.start("greeting|b", Kind.TASK)
    for n in range(4):
        ledger.send("ledger-entity|e", f"ev-{n}")
    ledger.samples = [
        Sample("single", {OLD: frozenset({"greeting|a", "ledger-entity|e"}), NEW: frozenset()}),
        Sample("draining", {OLD: frozenset(), NEW: frozenset({"ledger-entity|e"})}),
    ]
    ledger.runs = {
        "greeting|a": [Run(OLD, "r1", "COMPLETED")],
        "greeting|b": [Run(NEW, "r2", "COMPLETED")],
        "ledger-entity|e": [
            Run(OLD, "r3", "COMPLETED", handed_off=True),
            Run(NEW, "r4", "COMPLETED"),
        ],
    }
    ledger.processed = {"ledger-entity|e": Counter({"ev-0": 1, "ev-1": 1, "ev-2": 1, "ev-3": 1})}
    ledger.schedule_times = [(T0 + EVERY * i, OLD if i < 3 else NEW) for i in range(6)]
    return ledger


def only(ledger: Ledger) -> tuple[Problem, str]:
    found = ledger.check()
    assert len(found) == 1, found
    return found[0].problem, str(found[0])


def test_a_clean_migration_has_no_violation() -> None:
    assert clean().check() == []


def test_two_open_runs_of_one_entity_in_a_sample() -> None:
    ledger = clean()
    ledger.samples.append(
        Sample(
            "routing:claim",
            {OLD: frozenset({"ledger-entity|e"}), NEW: frozenset({"ledger-entity|e"})},
        )
    )
    problem, text = only(ledger)
    assert problem is Problem.TWO_OPEN
    assert "ledger-entity|e open on new and old at routing:claim" in text


def test_an_event_processed_twice() -> None:
    ledger = clean()
    ledger.processed["ledger-entity|e"]["ev-2"] += 1
    problem, text = only(ledger)
    assert problem is Problem.DUPLICATE_EVENT and "ev-2" in text


def test_a_lost_event() -> None:
    ledger = clean()
    del ledger.processed["ledger-entity|e"]["ev-3"]
    problem, text = only(ledger)
    assert problem is Problem.LOST_EVENT and "ev-3" in text


def test_an_entity_never_processed_loses_every_event() -> None:
    ledger = clean()
    ledger.processed = {}
    problem, text = only(ledger)
    assert problem is Problem.LOST_EVENT and "4 e.g." in text


def test_a_schedule_period_ran_twice() -> None:
    ledger = clean()
    ledger.schedule_times.append((T0 + EVERY * 3, OLD))
    problem, text = only(ledger)
    assert problem is Problem.PERIOD_TWICE and "['new', 'old']" in text


def test_a_schedule_period_skipped() -> None:
    ledger = clean()
    ledger.schedule_times = [p for p in ledger.schedule_times if p[0] != T0 + EVERY * 3]
    problem, text = only(ledger)
    assert problem is Problem.PERIOD_SKIPPED and "1 period(s) between 12:00:04 and 12:00:08" in text


def test_a_task_completed_on_both_clusters() -> None:
    ledger = clean()
    ledger.runs["greeting|a"].append(Run(NEW, "r9", "COMPLETED"))
    problem, text = only(ledger)
    assert problem is Problem.TASK_RUNS
    assert "greeting|a: completed on old, completed on new" in text


@pytest.mark.parametrize("runs", [[], [Run(OLD, "r1", "RUNNING")], [Run(OLD, "r1", "FAILED")]])
def test_a_task_missing_open_or_failed(runs: list[Run]) -> None:
    ledger = clean()
    ledger.runs["greeting|a"] = runs
    assert only(ledger)[0] is Problem.TASK_RUNS


def test_an_entity_left_open_or_handed_off_to_nowhere() -> None:
    ledger = clean()
    ledger.runs["ledger-entity|e"][1] = Run(NEW, "r4", "RUNNING")
    problem, text = only(ledger)
    assert problem is Problem.ENTITY_RUN and "running on new" in text
    ledger = clean()
    ledger.runs["ledger-entity|e"] = [Run(OLD, "r3", "COMPLETED", handed_off=True)]
    problem, text = only(ledger)
    assert problem is Problem.ENTITY_RUN and "no run continued elsewhere" in text


def test_the_cli_exits_1_on_a_violation_and_0_without(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from app.cli.main import app
    from app.loadtest import rehearsal
    from app.platform.router import RouterStats

    def fake(violations: list[Violation]):  # type: ignore[no-untyped-def]
        def run(cfg: rehearsal.RehearsalConfig, console: object) -> rehearsal.Outcome:
            assert (cfg.source, cfg.target, cfg.shards_to) == ("postgres", "cassandra", 16)
            return rehearsal.Outcome(Ledger(), [], RouterStats(), violations)

        return run

    args = ["migrate", "rehearse", "--from", "postgres", "--to", "cassandra", "--shards-to", "16"]
    monkeypatch.setattr(rehearsal, "rehearse", fake([Violation(Problem.LOST_EVENT, "x")]))
    assert CliRunner().invoke(app, args).exit_code == 1
    monkeypatch.setattr(rehearsal, "rehearse", fake([]))
    assert CliRunner().invoke(app, args).exit_code == 0
