"""The app database: one psycopg_pool connection pool per process.

Activities run in threads, so the pool is thread-safe and hands each caller an autocommit
connection; a connection left mid-transaction or broken is reset or replaced by the pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool


class DatabaseNotConfiguredError(ValueError):
    """No app database was given; the message says how to give one."""


def is_connection_error(err: BaseException) -> bool:
    """Whether an error is the database's or the connection's rather than the statement's:
    a retry may succeed, and every other statement on that connection would fail alike."""
    return isinstance(err, psycopg.OperationalError | psycopg.InterfaceError)


class Database:
    """A lazily opened pool of autocommit connections to the app database."""

    def __init__(self, dsn: str, size: int = 8) -> None:
        if not dsn:
            raise DatabaseNotConfiguredError(
                "no database configured: set HAUL_DATABASE_URL (haul run and haul worker "
                "--cluster set it for a local cluster)"
            )
        self.dsn = dsn
        self.size = size
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None

    @property
    def pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        if self._pool is None:
            self._pool = ConnectionPool(
                self.dsn,
                min_size=0,
                max_size=self.size,
                kwargs={"autocommit": True},
                open=True,
                name="haul-app-db",
            )
        return self._pool

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection[Any]]:
        with self.pool.connection() as conn:
            yield conn

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
