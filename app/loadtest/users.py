"""TemporalUser: a Locust User that drives Temporal through one asyncio client per process.

Locust runs users as gevent greenlets in a monkey-patched interpreter; the temporalio client is
asyncio. The bridge keeps them apart:

- One asyncio loop per Locust process, in a real OS thread started with gevent's original
  `_thread.start_new_thread` (see the note at `_start_real_thread` for why the original
  `threading.Thread` class alone is not enough), built on the original epoll selector and a
  raw socketpair, so gevent never runs inside it.
- One Temporal client, connected once, on that loop.
- A greenlet submits a coroutine with `asyncio.run_coroutine_threadsafe` and waits on a
  `gevent.event.AsyncResult`. When the coroutine finishes, the loop thread queues the result
  and pokes one gevent async watcher (`hub.loop.async_()`, whose `send()` is thread-safe); the
  watcher's callback runs in the hub and sets the AsyncResults. No greenlet ever blocks on a
  `concurrent.futures.Future.result()`, so the hub keeps running every other user.
- Every operation fires `events.request` with its type, name, response time (measured around
  the whole bridge round trip, overhead included), length and exception.

The bridge also counts what the tests and the ceiling comparison need: how many times
`Client.connect` was called in this process, calls in flight (and their maximum), and the time
a call waits before the loop runs it (submit lag) and after it finishes before its greenlet
wakes (wake lag). `write_stats` saves them (a `ProcessStats`) for the parent `haul loadtest`
process.

This module also holds the process's run settings (`run_settings`): one `LoadSettings`, read
from the environment, or on a distributed worker taken from the master at each run's start.
"""

from __future__ import annotations

import _socket
import asyncio
import atexit
import os
import resource
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

import gevent
import gevent.event
import gevent.lock
import gevent.monkey
from locust import User, events
from temporalio.client import Client

from app.core.settings import AppSettings
from app.core.target import Target
from app.loadtest.accounting import QueryCounter
from app.loadtest.models import Lag, OperationCounts, ProcessStats
from app.loadtest.process_files import harness_file
from app.loadtest.settings import LoadSettings
from app.platform.client import HaulClient
from app.stack import targets

T = TypeVar("T")
# gevent's originals. Note: the original threading.Thread class is not enough on its own: its
# start() calls threading._start_new_thread, which gevent patched to spawn a greenlet, so the
# "thread" would be a greenlet and the loop's blocking epoll would freeze the whole process.
# The loop therefore starts on the original _thread.start_new_thread: a real OS thread.
_start_real_thread = gevent.monkey.get_original("_thread", "start_new_thread")
_RealSelector = gevent.monkey.get_original("selectors", "DefaultSelector")


class _LoopOutsideGevent(asyncio.SelectorEventLoop):
    """A selector loop with no gevent object inside: the original epoll selector and a raw
    socketpair for call_soon_threadsafe wake-ups (the patched socket module makes gevent ones)."""

    def __init__(self) -> None:
        super().__init__(_RealSelector())

    def _make_self_pipe(self) -> None:
        self._ssock, self._csock = _socket.socketpair()
        self._ssock.setblocking(False)
        self._csock.setblocking(False)
        self._internal_fds += 1  # type: ignore[attr-defined]
        self._add_reader(self._ssock.fileno(), self._read_from_self)  # type: ignore[attr-defined]


class _RealThreadExecutor(ThreadPoolExecutor):
    """The loop's default executor (`asyncio.to_thread`, `run_in_executor`): one real OS thread
    per call. The standard pool would start gevent-patched "threads", greenlets of a hub that
    never runs in the loop thread, and its exit hook would wait on them forever. (asyncio only
    takes ThreadPoolExecutor subclasses; this one never starts the pool's own threads.)"""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        _start_real_thread(run, ())
        return future


def _count_connect_calls() -> None:
    """Wrap Client.connect once per process so every call is counted, whoever makes it."""
    if getattr(Client, "_haul_connect_calls", None) is not None:
        return
    original = Client.connect.__func__  # type: ignore[attr-defined]

    async def counting_connect(cls: type[Client], *args: Any, **kwargs: Any) -> Client:
        Client._haul_connect_calls += 1  # type: ignore[attr-defined]
        return await original(cls, *args, **kwargs)  # type: ignore[no-any-return]

    Client._haul_connect_calls = 0  # type: ignore[attr-defined]
    Client.connect = classmethod(counting_connect)  # type: ignore[method-assign,assignment]


def connect_calls() -> int:
    return int(getattr(Client, "_haul_connect_calls", 0))


_count_connect_calls()


_settings: list[LoadSettings] = []


def run_settings() -> LoadSettings:
    """This process's settings for the run: from the environment (HAUL_LT_*) on first use."""
    if not _settings:
        _settings.append(LoadSettings())
    return _settings[0]


def use_run_settings(settings: LoadSettings) -> None:
    """Replace the run's settings (a distributed worker, given them by its master)."""
    _settings[:] = [settings]


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class TemporalBridge:
    """One asyncio loop thread and one Temporal client for the whole Locust process."""

    _instance: ClassVar[TemporalBridge | None] = None
    _lock: ClassVar[gevent.lock.Semaphore] = gevent.lock.Semaphore()
    MAX_LAG_SAMPLES = 200_000

    def __init__(self) -> None:
        self.loop = _LoopOutsideGevent()
        self.loop.set_default_executor(_RealThreadExecutor())
        self.queries = QueryCounter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.completed = 0
        # Operations by request name, counted here as well as in Locust's stats: Locust stops
        # recording while users finish their last operation during the stop timeout.
        self.operations: dict[str, OperationCounts] = {}
        self.submit_lag: deque[float] = deque(maxlen=self.MAX_LAG_SAMPLES)
        self.wake_lag: deque[float] = deque(maxlen=self.MAX_LAG_SAMPLES)
        self._done: deque[tuple[gevent.event.AsyncResult, Future[Any], float]] = deque()
        self._watcher = gevent.get_hub().loop.async_()
        self._watcher.start(self._drain)
        self.loop_thread_id = _start_real_thread(self._run_loop, ())
        self.haul: HaulClient = self.call(self._connect())
        self.client: Client = self.haul.client

    @classmethod
    def get(cls) -> TemporalBridge:
        """The process's bridge, created (and connected) by the first user that asks."""
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _connect(self) -> HaulClient:
        # Connection settings come from envconfig (TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE /
        # TEMPORAL_ADDRESS ...), which `haul loadtest` sets for the target; with
        # HAUL_MIGRATION every call routes through the migration state in the app database.
        target = targets.resolve() if AppSettings().migration else Target()
        return await HaulClient.connect(target, interceptors=[self.queries])

    async def _tracked(self, coro: Awaitable[T], submitted: float) -> T:
        # Runs on the loop thread only, so the counters need no lock.
        self.submit_lag.append(time.perf_counter() - submitted)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await coro
        finally:
            self.in_flight -= 1
            self.completed += 1

    def _on_done(self, result: gevent.event.AsyncResult, fut: Future[Any]) -> None:
        # Loop thread: queue the finished future and wake the hub; never touch gevent objects.
        self._done.append((result, fut, time.perf_counter()))
        self._watcher.send()

    def _drain(self) -> None:
        # Hub thread: the watcher may coalesce several sends, so empty the whole queue.
        now = time.perf_counter()
        while self._done:
            result, fut, finished = self._done.popleft()
            self.wake_lag.append(now - finished)
            exc = fut.exception()  # the future is done: this never blocks
            if exc is not None:
                result.set_exception(exc)
            else:
                result.set(fut.result())

    def submit(self, coro: Coroutine[Any, Any, T]) -> gevent.event.AsyncResult:
        """Run coro on the loop; the returned AsyncResult is set from the hub when it ends."""
        result = gevent.event.AsyncResult()
        fut = asyncio.run_coroutine_threadsafe(self._tracked(coro, time.perf_counter()), self.loop)
        fut.add_done_callback(lambda f: self._on_done(result, f))
        return result

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Wait (cooperatively, in this greenlet) for coro's result."""
        return self.submit(coro).get()  # type: ignore[no-any-return]

    def stats(self) -> ProcessStats:
        cpu = _cpu_seconds()
        sub, wake = list(self.submit_lag), list(self.wake_lag)
        return ProcessStats(
            pid=os.getpid(),
            connect_calls=connect_calls(),
            max_in_flight=self.max_in_flight,
            completed_calls=self.completed,
            operations=self.operations,
            queries_succeeded=self.queries.succeeded,
            queries_failed=self.queries.failed,
            submit_lag_ms=Lag(p50=_percentile(sub, 0.5) * 1000, p95=_percentile(sub, 0.95) * 1000),
            wake_lag_ms=Lag(p50=_percentile(wake, 0.5) * 1000, p95=_percentile(wake, 0.95) * 1000),
            cpu_seconds=cpu,
            load_cpu_seconds=cpu - _load_started_cpu[0] if _load_started_cpu else 0.0,
        )


def write_stats() -> None:
    """Save this process's bridge stats where the parent `haul loadtest` process reads them."""
    out = run_settings().out
    bridge = TemporalBridge._instance
    if out is None or bridge is None:
        return
    harness_file(out).write_text(bridge.stats().model_dump_json(indent=2))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# This process's CPU when the load began: start-up (imports, connecting) is not load.
_load_started_cpu: list[float] = []


@events.test_start.add_listener
def _on_test_start(**_: Any) -> None:
    _load_started_cpu[:] = [_cpu_seconds()]


@events.test_stop.add_listener
def _on_test_stop(**_: Any) -> None:
    write_stats()


@events.quitting.add_listener
def _on_quitting(**_: Any) -> None:
    write_stats()


_exit_code: list[int] = []


@events.quit.add_listener
def _on_quit(exit_code: int, **_: Any) -> None:
    _exit_code.append(exit_code)


def _exit_before_teardown() -> None:
    """Leave with Locust's own exit code once it has written every file. Interpreter teardown
    next to the temporalio and grpcio threads can abort (SIGABRT, "PyGILState_Release")
    after a clean run; exit hooks run before that teardown begins."""
    if _exit_code:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_code[-1])


atexit.register(_exit_before_teardown)


class TemporalUser(User):
    """Base for scenario users: `self.run_op(name, factory)` times one Temporal operation.

    A subclass names every request it reports in `request_names`: the scenario table
    (scenarios.py) gates on those names, and a unit test checks the two against each other.
    """

    abstract = True
    request_names: ClassVar[tuple[str, ...]] = ()
    bridge: TemporalBridge
    haul: HaulClient

    def on_start(self) -> None:
        self.bridge = TemporalBridge.get()
        self.haul = self.bridge.haul

    def run_op(
        self,
        name: str,
        factory: Callable[[], Coroutine[Any, Any, Any]],
        request_type: str = "temporal",
    ) -> Any:
        """Run one operation and report it to Locust; exceptions become failures."""
        self._check_declared(name)
        start = time.perf_counter()
        try:
            result = self.bridge.call(factory())
        except Exception as exc:
            self._fire(request_type, name, start, exc)
            return None
        self._fire(request_type, name, start, None)
        return result

    def run_ops(self, name: str, factories: list[Callable[[], Coroutine[Any, Any, Any]]]) -> None:
        """Run several operations concurrently (a burst); each is its own request, timed to
        the moment its own result arrives."""
        self._check_declared(name)
        started = time.perf_counter()

        def report(result: gevent.event.AsyncResult) -> None:
            self._fire("temporal", name, started, result.exception)

        pending = [self.bridge.submit(f()) for f in factories]
        for result in pending:
            result.rawlink(report)
        gevent.wait(pending)

    def _check_declared(self, name: str) -> None:
        if name not in self.request_names:
            raise ValueError(
                f"{type(self).__name__} reports request {name!r} but declares only "
                f"{self.request_names}; add it to request_names"
            )

    def _fire(self, request_type: str, name: str, start: float, exc: Exception | None) -> None:
        counts = self.bridge.operations.setdefault(name, OperationCounts())
        if exc is not None:
            counts.failed += 1
        else:
            counts.succeeded += 1
        self.environment.events.request.fire(
            request_type=request_type,
            name=name,
            response_time=(time.perf_counter() - start) * 1000,
            response_length=0,
            exception=exc,
            context={},
        )
