"""Paced heartbeats: an activity step that ends early sends none (each one is billed); one that
runs past the pace beats on every call from then on (the SDK throttles what reaches the server)."""

from __future__ import annotations

import time

import pytest

from app.platform.heartbeat import PacedHeartbeat


def test_calls_before_the_pace_send_nothing_and_later_ones_send_their_details(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    sent: list[tuple[object, ...]] = []
    beat = PacedHeartbeat(after=10.0, beat=lambda *details: sent.append(details))
    for step in range(5):
        now[0] += 1.0
        beat(step)
    assert sent == []
    now[0] += 5.0  # 10 s since the attempt began
    beat("late", 7)
    beat("later")
    assert sent == [("late", 7), ("later",)]
