"""The one way to reach a cluster: a local cluster's name or an envconfig profile -> Target.

- A local cluster (`--cluster N`): its profile in the registry's temporal.toml, its app
  namespace, its app database and its blob directory.
- Otherwise production: the envconfig profile (`temporal.toml` plus TEMPORAL_* variables, as
  the `temporal` CLI reads them), HAUL_DATABASE_URL and HAUL_BLOB_DIR. On a developer machine
  where none of that is set (no profile, no HAUL_DATABASE_URL), the local cluster `default`,
  when there is one.
"""

from __future__ import annotations

import os

from app.core.settings import AppSettings
from app.core.target import Target
from app.platform.client import connect_config
from app.stack.cluster import app_namespace
from app.stack.registry import ClusterRecord, Registry

DEFAULT_CLUSTER = "default"


class UnknownClusterError(LookupError):
    """No local cluster has that name."""


def for_cluster(
    rec: ClusterRecord, registry: Registry | None = None, *, migration: bool = False
) -> Target:
    """The Target of a registered local cluster."""
    return Target(
        migration=migration,
        cluster=rec.name,
        profile=rec.name,
        config_file=str((registry or Registry()).profile_file),
        namespace=app_namespace(rec),
        database_url=rec.dsn(),
        blob_dir=str(rec.blob_dir),
    )


def resolve(
    cluster: str | None = None,
    *,
    profile: str | None = None,
    registry: Registry | None = None,
    migration: bool | None = None,
) -> Target:
    """Everything a process needs to reach `cluster` (a local one) or `profile` (envconfig).

    `migration` (default HAUL_MIGRATION) makes the process follow the migration state in the
    app database; the profile must then be named, and TEMPORAL_* variables stop overriding
    it, so that the two clusters' profiles cannot both follow one TEMPORAL_ADDRESS.
    """
    reg = registry or Registry()
    app = AppSettings()
    if migration is None:
        migration = app.migration
    if cluster:
        rec = reg.get(cluster)
        if rec is None:
            raise UnknownClusterError(
                f"no local cluster {cluster!r}; `haul stack status` lists them, "
                f"`haul stack up --name {cluster}` starts one"
            )
        return for_cluster(rec, reg, migration=migration)
    if profile is None and not app.database_url:
        local = reg.get(DEFAULT_CLUSTER)
        if local is not None:
            return for_cluster(local, reg, migration=migration)
    if migration and profile is None:
        # The one TEMPORAL_* variable still read in a migration: which profile is ours.
        profile = os.environ.get("TEMPORAL_PROFILE") or None
    try:
        config = connect_config(profile, env_overrides=not migration)
    except Exception as err:  # the bridge raises its own ConfigError
        raise ValueError(
            f"cannot load the envconfig profile {profile or '(default)'}: {err}; check "
            "TEMPORAL_CONFIG_FILE and TEMPORAL_PROFILE, or pass --cluster for a local cluster"
        ) from None
    return Target(
        migration=migration,
        profile=profile,
        namespace=str(config.get("namespace") or "default"),
        database_url=app.database_url,
        blob_dir=app.blob_dir,
    )
