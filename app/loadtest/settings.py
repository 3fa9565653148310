"""The settings of one load-test run, on both sides of the process boundary.

`RunSettings` is what `haul loadtest` is asked for: scenario, users, duration, SLOs and the
distributed mode. `LoadSettings` is what every Locust process reads, one model for all of
them: the parent builds it for the run and gives it to Locust as HAUL_LT_* variables
(`LoadSettings.env`); the Locust process reads those back with the same model; a distributed
master forwards it to each worker in a `Handoff`, beside the target's coordinates. The parent
never imports Locust, so this module does not either.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Percent by which the server count and the histories may differ before a type is flagged.
TOLERANCE_PCT = 2.0

# The Locust variable that carries a master's Handoff to its workers (`--haul-handoff`).
HANDOFF_VAR = "HAUL_LT_HANDOFF"

TargetKey = Literal[
    "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_PROFILE", "TEMPORAL_CONFIG_FILE"
]
TARGET_KEYS: tuple[str, ...] = get_args(TargetKey)


class StepShape(BaseModel):
    """A capacity run's load: `step_start` users, `step_users` more each step, for `steps`
    steps, each step's users started at `spawn_rate` per second. A step lasts `step_seconds`
    from the moment its users all run; one whose users do not all run within
    `ready_seconds` is reported as the harness not ready."""

    step_start: int = Field(default=5, ge=0)
    step_users: int = Field(default=5, ge=0)
    steps: int = Field(default=5, ge=1)
    step_seconds: float = Field(default=20.0, gt=0)
    spawn_rate: float = Field(default=50.0, gt=0)
    ready_seconds: float = Field(default=120.0, gt=0)

    def users(self, step: int) -> int:
        """Users during `step` (0-based)."""
        return self.step_start + step * self.step_users


class LoadSettings(BaseSettings):
    """What a Locust process needs for one run, from HAUL_LT_* variables.

    Every field but the local ones crosses from a distributed master to its workers. The local
    ones are each process's own: its output directory, the master's stop time, and the app
    database and blob store parcel_ingest writes to (HAUL_DATABASE_URL, HAUL_BLOB_DIR, which
    are credentials and never leave the process's environment).
    """

    model_config = SettingsConfigDict(env_prefix="HAUL_LT_", populate_by_name=True, extra="ignore")

    # Prefix of every task identifier, so the run's workflows can be found afterwards.
    run_tag: str = Field(default_factory=lambda: f"lt-{uuid.uuid4().hex[:8]}")
    # signal_fan_in: entities the bursts land on, and signal-with-starts per burst.
    entities: int = Field(default=10, ge=1)
    burst: int = Field(default=5, ge=1)
    # Seconds a user waits between operations (0: a closed loop, as omes).
    wait: float = Field(default=0.0, ge=0)
    # parcel_ingest: invoices per generated file, charge groups per invoice.
    parcel_invoices: int = Field(default=3, ge=1)
    parcel_groups: int = Field(default=2, ge=1)
    # capacity: the stepped shape (HAUL_LT_SHAPE, JSON); None for a fixed run.
    shape: StepShape | None = None

    out: Path | None = None
    # A distributed master: seconds of load, then it stops every worker and quits.
    stop_after: float = Field(default=0.0, ge=0)
    database_url: SecretStr = Field(
        default=SecretStr(""), validation_alias="HAUL_DATABASE_URL", exclude=True
    )
    blob_dir: str = Field(default="", validation_alias="HAUL_BLOB_DIR", exclude=True)

    LOCAL: ClassVar[frozenset[str]] = frozenset({"out", "stop_after"})

    def env(self) -> dict[str, str]:
        """The HAUL_LT_* variables that give a Locust process these settings."""
        values = self.model_dump(mode="json", exclude_none=True)
        return {
            f"HAUL_LT_{name.upper()}": value if isinstance(value, str) else json.dumps(value)
            for name, value in values.items()
        }

    def forwarded(self) -> dict[str, Any]:
        """The fields a distributed worker takes from its master."""
        return self.model_dump(mode="json", exclude=set(self.LOCAL))


_FORWARDED_FIELDS = frozenset(
    name
    for name, info in LoadSettings.model_fields.items()
    if name not in LoadSettings.LOCAL and not info.exclude
)


class Handoff(BaseModel):
    """What a distributed worker takes from its master for one run: the target's coordinates
    and the run's settings. Credentials (TEMPORAL_API_KEY, TLS key data, the app database
    URL) never travel; a worker's own environment holds them. The receiving side refuses
    anything else, so neither a credential nor a stray setting can cross."""

    model_config = ConfigDict(extra="forbid")

    target: dict[TargetKey, str] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("settings")
    @classmethod
    def _only_forwarded_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        stray = sorted(set(value) - _FORWARDED_FIELDS)
        if stray:
            raise ValueError(
                f"a worker takes only {sorted(_FORWARDED_FIELDS)} from its master, not {stray}; "
                "run the same haul version on the master and the workers"
            )
        return value

    @classmethod
    def of(cls, settings: LoadSettings, env: Mapping[str, str]) -> Handoff:
        """The master's handoff: its settings, and the target keys of its environment."""
        target = {key: env[key] for key in TARGET_KEYS if key in env}
        return cls(target=target, settings=settings.forwarded())  # type: ignore[arg-type]

    def apply(self, environ: MutableMapping[str, str]) -> LoadSettings:
        """On a worker: point `environ` (TEMPORAL_*, read by envconfig) at the master's target
        and return the run's settings: the master's, with this process's local fields."""
        for key in [k for k in environ if k in TARGET_KEYS]:
            del environ[key]
        environ.update({str(key): value for key, value in self.target.items()})
        return LoadSettings(**self.settings)


class RunSettings(BaseModel):
    """One `haul loadtest` run, as asked for on the command line."""

    scenario: str
    users: int = 10
    spawn_rate: float = 10.0
    duration: float = 30.0
    out_dir: Path = Path("loadtest-reports")
    slo_p95_ms: float = Field(default=2000.0, gt=0)
    # Below 1: a run whose operations all failed must fail its gate, whatever the SLO.
    slo_failure_ratio: float = Field(default=0.01, ge=0, lt=1)
    processes: int = 1
    # What the Locust processes get (run_tag and out are set per run by the runner).
    load: LoadSettings = Field(default_factory=LoadSettings)
    # Distributed: this run is the master of N `haul loadtest locust-worker` processes.
    expect_workers: int = 0
    master_bind_host: str = "127.0.0.1"
    master_bind_port: int = 5557
    workers_max_wait: float = 120.0
    sample_interval: float = 1.0
    tolerance_pct: float = TOLERANCE_PCT
    web: bool = False
    web_port: int = 8089
    quiet_timeout: float = 120.0
    stop_timeout: float = 60.0
