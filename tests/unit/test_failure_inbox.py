"""The failure inbox's pure parts: fingerprints, failure descriptions, final attempts."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from app.platform.failure_interceptor import is_final
from app.platform.failure_poller import (
    closed_query,
    describe_failure,
    payloads_from_json,
    payloads_to_json,
)
from app.platform.fingerprint import fingerprint, normalize


def test_one_cause_with_different_ids_and_numbers_is_one_fingerprint() -> None:
    a = "invoice INV-00123 for 'acct-9' off by 12.50 (run 3f2b1c4e-1234-4abc-9def-0123456789ab)"
    b = "invoice INV-77 for 'acct-10' off by 3 (run 0a2b1c4e-9999-4abc-9def-0123456789ff)"
    assert normalize(a) == normalize(b) == "invoice <id> for <str> off by <n> (run <uuid>)"
    assert fingerprint("RateMismatch", a) == fingerprint("RateMismatch", b)


def test_another_type_or_message_is_another_fingerprint() -> None:
    assert fingerprint("A", "carrier missing") != fingerprint("B", "carrier missing")
    assert fingerprint("A", "carrier missing") != fingerprint("A", "zone missing")
    assert normalize("hash deadbeef01 at 0x1f") == "hash <hex> at <hex>"


def test_the_root_cause_names_the_type_and_every_message_and_stack_is_kept() -> None:
    root = Failure(
        message="rate missing",
        stack_trace="root stack",
        application_failure_info=ApplicationFailureInfo(type="RateMissing"),
    )
    outer = Failure(message="Activity task failed", stack_trace="outer stack", cause=root)
    kind, message, stack = describe_failure(outer)
    assert (kind, message) == ("RateMissing", "Activity task failed: rate missing")
    assert stack == "outer stack\n\nroot stack"


def test_payloads_survive_the_round_trip_through_json() -> None:
    from temporalio.api.common.v1 import Payload

    p = Payload(metadata={"encoding": b"json/plain"}, data=b'{"a": 1}')
    assert payloads_from_json(payloads_to_json([p])) == [p]


def test_the_closed_query_covers_every_terminal_status() -> None:
    from datetime import UTC, datetime

    q = closed_query(datetime(2026, 1, 2, tzinfo=UTC))
    for status in ("Failed", "TimedOut", "Terminated", "Canceled"):
        assert f"ExecutionStatus = '{status}'" in q
    assert "CloseTime >= '2026-01-02T00:00:00+00:00'" in q


def _info(attempt: int, policy: RetryPolicy | None) -> Any:
    return cast(Any, SimpleNamespace(attempt=attempt, retry_policy=policy))


def test_only_the_last_attempt_is_final() -> None:
    policy = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))
    err = ApplicationError("x", type="T")
    assert is_final(err, _info(1, None))
    assert not is_final(err, _info(2, policy))
    assert is_final(err, _info(3, policy))
    assert is_final(ApplicationError("x", non_retryable=True), _info(1, policy))
    assert is_final(err, _info(1, RetryPolicy(non_retryable_error_types=["T"])))
