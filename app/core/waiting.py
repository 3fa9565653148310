"""One way to wait for something to become ready: poll a check until a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """The awaited condition did not hold in time, or what it waited on went away."""


def wait_until(
    check: Callable[[], T],
    *,
    what: str,
    timeout: float,
    interval: float = 0.2,
    retry_on: tuple[type[BaseException], ...] = (),
    alive: Callable[[], bool] | None = None,
) -> T:
    """Call `check` until it returns something truthy, and return that.

    Errors of the `retry_on` types count as "not yet" and the last one is quoted on timeout.
    `alive` (e.g. "is the server's process still running?") stops the wait early when it
    turns false, since nothing would then ever become ready.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except retry_on as err:
            last = err
        reason = f" (last error: {last})" if last is not None else ""
        if alive is not None and not alive():
            raise WaitTimeout(f"{what}: the process exited during startup{reason}")
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what}: not done within {timeout:.0f}s{reason}")
        time.sleep(interval)
