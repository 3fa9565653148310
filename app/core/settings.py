"""Worker and app settings, from HAUL_* environment variables (one place, typed)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _env_list(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


@dataclass
class Settings:
    """What a worker process needs beyond its Temporal connection."""

    database_url: str = ""
    blob_dir: str = ""
    task_queues: list[str] = field(default_factory=list)
    max_concurrent_activities: int = 100
    max_concurrent_workflow_tasks: int = 100
    graceful_shutdown_seconds: float = 30.0
    health_port: int = 9090
    health_host: str = "127.0.0.1"

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            database_url=env.get("HAUL_DATABASE_URL", ""),
            blob_dir=env.get("HAUL_BLOB_DIR", ""),
            task_queues=_env_list("HAUL_TASK_QUEUES"),
            max_concurrent_activities=int(env.get("HAUL_MAX_CONCURRENT_ACTIVITIES", "100")),
            max_concurrent_workflow_tasks=int(env.get("HAUL_MAX_CONCURRENT_WORKFLOW_TASKS", "100")),
            graceful_shutdown_seconds=float(env.get("HAUL_GRACEFUL_SHUTDOWN_SECONDS", "30")),
            health_port=int(env.get("HAUL_WORKER_HEALTH_PORT", "9090")),
            health_host=env.get("HAUL_WORKER_HEALTH_HOST", "127.0.0.1"),
        )
