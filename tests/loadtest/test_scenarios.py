"""The scenario table and the locustfile name the same user classes and requests. The
locustfile is imported in a subprocess, since importing Locust patches this interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

from app.loadtest import scenarios


def _declared_users() -> dict[str, list[str]]:
    code = "import json; from app.loadtest.locustfile import declared_users as d; "
    code += "print(json.dumps(d()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.splitlines()[-1]))


def test_every_scenario_names_real_user_classes_and_their_requests() -> None:
    declared = _declared_users()
    assert scenarios.mismatches(declared) == []
    used = {name for sc in scenarios.SCENARIOS.values() for name in sc.user_classes}
    assert used == set(declared), "a user class no scenario runs, or one that is missing"


def test_a_renamed_class_or_request_is_named() -> None:
    declared = {"StartAndCompleteUser": ["start_and_complete"], "TimerUser": ["timer_2s"]}
    problems = scenarios.mismatches(declared)
    assert "signal_fan_in: no user class 'SignalFanInUser' in the locustfile" in problems
    assert any("'timer_1s' is reported by none of ('TimerUser',)" in p for p in problems)
    assert not any(p.startswith("start_and_complete:") for p in problems)
