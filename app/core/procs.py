"""Process and port helpers: every local cluster is a set of processes tracked by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from app.core.waiting import WaitTimeout, wait_until

# A replaced binary still runs; /proc shows its old path with this suffix.
_DELETED = " (deleted)"


class PortInUseError(RuntimeError):
    """A port a cluster needs is already taken by something else."""


class StartupError(RuntimeError):
    """A process did not become ready; the message carries the tail of its log."""


class CommandError(RuntimeError):
    """A command exited non-zero; the message carries the tail of its output."""


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def ensure_ports_free(
    ports: Mapping[str, int], host: str = "127.0.0.1", wait: float = 0.0
) -> None:
    """Refuse to start when any port is taken, naming the port and its role. With `wait`,
    give a process that is still shutting down that many seconds to let go first."""
    with contextlib.suppress(WaitTimeout):
        wait_until(
            lambda: all(port_free(p, host) for p in ports.values()),
            what="ports to be released",
            timeout=wait,
            interval=0.5,
        )
    for role, port in ports.items():
        if not port_free(port, host):
            raise PortInUseError(
                f"port {port} ({role}) on {host} is already in use; stop what holds it "
                f"(`ss -ltnp 'sport = :{port}'`) or pick another cluster name or --port-base"
            )


def wait_port(port: int, timeout: float, host: str = "127.0.0.1", pid: int | None = None) -> bool:
    """Wait until host:port accepts connections, or the process dies, or time runs out."""

    def accepts() -> bool:
        with socket.create_connection((host, port), timeout=1):
            return True

    try:
        return wait_until(
            accepts,
            what=f"{host}:{port} to accept connections",
            timeout=timeout,
            retry_on=(OSError,),
            alive=None if pid is None else lambda: pid_alive(pid),
        )
    except WaitTimeout:
        return False


class ProcStamp(BaseModel):
    """What tells the process we started from a later one that reuses its pid: its start
    time (clock ticks since boot) and its executable."""

    model_config = ConfigDict(frozen=True)

    start_time: int
    exe: str


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first): the name may
    itself hold spaces and parentheses, so split after its last ')'."""
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()


def stamp(pid: int) -> ProcStamp | None:
    """The identity of whatever process holds pid now; None when none does (or it cannot
    be read)."""
    try:
        start_time = int(_stat_fields(pid)[19])  # field 22 of proc(5), counted from state
        exe = os.readlink(f"/proc/{pid}/exe")
    except (OSError, IndexError, ValueError):
        return None
    return ProcStamp(start_time=start_time, exe=exe.removesuffix(_DELETED))


def holds(pid: int, expect: ProcStamp) -> bool:
    """Whether pid still names the process `expect` recorded, and it is running."""
    return pid_alive(pid) and stamp(pid) == expect


def pid_alive(pid: int) -> bool:
    """Whether pid is a live, non-zombie process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return _stat_fields(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


def spawn(
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> int:
    """Start argv detached in its own session, with stdout and stderr appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            user=user,
        )
    return proc.pid


def run(
    argv: Sequence[str],
    what: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    error: type[Exception] = CommandError,
    tail: int = 30,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, capturing its output (appended to `log` when given).

    A non-zero exit raises `error` with what was being done, the command and the tail of its
    output, so the caller's message says what failed and why."""
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd
    )
    out = proc.stdout + proc.stderr
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as fh:
            fh.write(f"$ {' '.join(argv)}\n{out}\n")
    if proc.returncode != 0:
        last = "\n".join(out.strip().splitlines()[-tail:])
        raise error(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{last}")
    return proc


def stop_pid(
    pid: int,
    timeout: float = 20.0,
    sig: int = signal.SIGTERM,
    *,
    expect: ProcStamp | None = None,
) -> bool:
    """Stop one process group led by pid: sig first, then SIGKILL after timeout.

    Only the process `expect` names is signalled (without it, whatever holds pid when the
    call starts); a pid now held by another process counts as gone. Returns whether a
    signal was sent."""
    expect = expect or stamp(pid)
    if expect is None or not holds(pid, expect):
        _reap(pid)
        return False
    _signal_group(pid, sig)
    if _wait_exit(pid, expect, timeout):
        return True
    # Ours still, or ours mid-exit (its executable no longer readable): not a newcomer that
    # took the pid while we waited. Kill it and wait until it is really gone.
    if pid_alive(pid) and stamp(pid) in (expect, None):
        _signal_group(pid, signal.SIGKILL)
        _wait_exit(pid, expect, 5.0)
    return True


def _wait_exit(pid: int, expect: ProcStamp, timeout: float) -> bool:
    """Whether the process exited (and was reaped if it is our child) within timeout."""

    def gone() -> bool:
        _reap(pid)
        if not pid_alive(pid):
            return True
        # An exiting process may already have no readable executable: still ours.
        now = stamp(pid)
        return now is not None and now != expect

    try:
        return wait_until(gone, what=f"pid {pid} to exit", timeout=timeout, interval=0.1)
    except WaitTimeout:
        return False


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect an exited child of this process so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
