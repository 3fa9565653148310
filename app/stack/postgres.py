"""A local PostgreSQL 16 from the binaries that PyPI's pgserver ships.

We run the `postgres` binary ourselves, rather than through pgserver's own lifecycle, so the
server listens on a TCP loopback port of the cluster's block, can serve TLS, and is tracked by
pid like every other process of a cluster. PostgreSQL refuses to run as root, so under root
the server runs as an unprivileged system user.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import stat
import subprocess
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from app.core.files import write_private
from app.core.procs import StartupError, log_tail, pid_alive, spawn
from app.core.waiting import WaitTimeout, wait_until

SYSTEM_USER = "haulpg"


def _pgserver() -> Any:
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir at import; we do not use it.
        warnings.simplefilter("ignore")
        import pgserver._commands
        import pgserver.utils
    return pgserver


def bin_path(name: str, bindir: Path | None = None) -> Path:
    """Path to a PostgreSQL binary: pgserver's, or one in bindir (another PostgreSQL build,
    e.g. one with SSL support, which pgserver's lacks)."""
    if bindir is not None:
        return bindir / name
    return Path(_pgserver()._commands.POSTGRES_BIN_PATH) / name


def new_password() -> str:
    return secrets.token_urlsafe(18)


def _run_as() -> str | None:
    """The system user PostgreSQL runs as: an unprivileged one when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
    utils = _pgserver().utils
    ensure_folder_permissions = utils.ensure_folder_permissions
    ensure_prefix_permissions = utils.ensure_prefix_permissions
    binaries = Path(bin_path("postgres")).parent
    ensure_prefix_permissions(binaries)
    ensure_folder_permissions(binaries, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(binaries.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    return SYSTEM_USER


def _traversable(path: Path) -> None:
    """Let other users pass through (not list) every parent of path: the server, run as its
    own user, must reach its data directory inside owner-only state directories."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(stat.S_IMODE(mode) | 0o011)


def _own(path: Path, user: str | None) -> None:
    """Hand a directory to the PostgreSQL system user, making its parents traversable."""
    if user is None:
        return
    _traversable(path)
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def init_cluster(pgdata: Path, superuser: str, password: str, bindir: Path | None = None) -> None:
    """initdb a fresh data directory with scram passwords on TCP and trust on the socket."""
    if (pgdata / "PG_VERSION").exists():
        return
    user = _run_as()
    pgdata.mkdir(parents=True, exist_ok=True)
    pgdata.chmod(0o700)
    _own(pgdata, user)
    pwfile = pgdata.parent / ".pgpass-init"
    write_private(pwfile, password)
    _own(pwfile, user)
    try:
        subprocess.run(
            [
                str(bin_path("initdb", bindir)),
                "-D",
                str(pgdata),
                "-U",
                superuser,
                "--pwfile",
                str(pwfile),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
            ],
            check=True,
            capture_output=True,
            user=user,
        )
    except subprocess.CalledProcessError as err:
        msg = err.stderr.decode(errors="replace")
        raise StartupError(f"initdb failed for {pgdata}:\n{msg}") from err
    finally:
        pwfile.unlink(missing_ok=True)


def write_settings(pgdata: Path, settings: Mapping[str, str]) -> None:
    """Write haul's settings to postgresql.auto.conf's neighbour, included from postgresql.conf."""
    conf = pgdata / "haul.conf"
    conf.write_text("".join(f"{k} = '{v}'\n" for k, v in settings.items()))
    main = pgdata / "postgresql.conf"
    text = main.read_text()
    if "include_if_exists = 'haul.conf'" not in text:
        main.write_text(text + "\ninclude_if_exists = 'haul.conf'\n")
    _own(pgdata, _run_as())


def start(
    pgdata: Path,
    port: int,
    log_path: Path,
    settings: Mapping[str, str] | None = None,
    bindir: Path | None = None,
) -> int:
    """Start postgres on 127.0.0.1:port and return its pid once it accepts connections."""
    user = _run_as()
    sockdir = pgdata / "run"
    sockdir.mkdir(exist_ok=True)
    write_settings(
        pgdata,
        {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(sockdir),
            "max_connections": "300",
            "shared_buffers": "128MB",
            "fsync": "on",
            **(settings or {}),
        },
    )
    (pgdata / "postmaster.pid").unlink(missing_ok=True)
    pid = spawn([str(bin_path("postgres", bindir)), "-D", str(pgdata)], log_path, user=user)
    return pid


def wait_ready(dsn: str, pid: int, log_path: Path, timeout: float = 60.0) -> None:
    """Wait until the server answers a query, or fail with the tail of its log."""

    def answers() -> bool:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            conn.execute("select 1")
            return True

    try:
        wait_until(
            answers,
            what="PostgreSQL to accept connections",
            timeout=timeout,
            interval=0.3,
            retry_on=(psycopg.OperationalError,),
            alive=lambda: pid_alive(pid),
        )
    except WaitTimeout as err:
        raise StartupError(f"{err}; its log says:\n{log_tail(log_path)}") from None


def ensure_database(admin_dsn: str, name: str) -> None:
    """Create a database if it does not exist (CREATE DATABASE cannot run in a transaction)."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))


def remove_data(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
