"""Where a process works: one Temporal cluster and the app's stores that go with it.

`app.stack.targets.resolve` builds a Target from a local cluster's name or from an envconfig
profile (production); every command, the worker and the main job take one, so they all agree
on the profile, the app database and the blob store.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Target(BaseModel):
    """Everything a process needs to reach a cluster: its Temporal connection (an envconfig
    profile and file; None means envconfig's own defaults and TEMPORAL_* variables), the
    namespace the app runs in, the app database and the blob store. In a migration the
    profiles of both clusters live in the same envconfig file, named as the migration state
    in the app database names the clusters."""

    model_config = ConfigDict(frozen=True)

    # The local cluster's name, or "" for a production profile.
    cluster: str = ""
    profile: str | None = None
    config_file: str | None = None
    namespace: str = "default"
    database_url: str = ""
    blob_dir: str = ""
    # Follow the migration state in the app database (HAUL_MIGRATION): reach every cluster
    # it names, each through its own profile with no TEMPORAL_* overrides.
    migration: bool = False

    def env(self) -> dict[str, str]:
        """Variables that point a child process (a worker, a load generator) at this target."""
        env = {"HAUL_DATABASE_URL": self.database_url, "HAUL_BLOB_DIR": self.blob_dir}
        if self.config_file:
            env["TEMPORAL_CONFIG_FILE"] = self.config_file
        if self.profile:
            env["TEMPORAL_PROFILE"] = self.profile
        if self.migration:
            env["HAUL_MIGRATION"] = "true"
        return env
