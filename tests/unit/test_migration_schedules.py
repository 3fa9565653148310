"""The boundary second a schedule changes cluster at: ahead of now, and no action time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.platform.migration_schedules import pick_boundary

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def every(step: timedelta, count: int, first: datetime = NOW) -> list[datetime]:
    return [first + i * step for i in range(count)]


def test_with_no_action_near_it_the_boundary_is_now_plus_the_lead() -> None:
    hourly = [NOW + 40 * 60 * S, NOW + 100 * 60 * S]
    assert pick_boundary(NOW, hourly, lead=5 * S) == NOW + 5 * S


def test_the_boundary_is_the_next_whole_second() -> None:
    b = pick_boundary(NOW + timedelta(microseconds=250_000), [], lead=5 * S)
    assert b == NOW + 6 * S


def test_a_boundary_that_would_fall_on_an_action_time_moves_past_it() -> None:
    times = every(2 * S, 10)  # 12:00:00, :02, :04 ...
    assert pick_boundary(NOW, times, lead=4 * S) == NOW + 5 * S


def test_every_second_busy_leaves_the_first_second_after_the_listed_times() -> None:
    times = every(S, 10)
    assert pick_boundary(NOW, times, lead=3 * S) == NOW + 10 * S


def test_the_boundary_is_never_before_the_lead() -> None:
    for micro in (0, 1, 999_999):
        now = NOW + timedelta(microseconds=micro)
        assert pick_boundary(now, every(3 * S, 10), lead=5 * S) >= now + 5 * S
