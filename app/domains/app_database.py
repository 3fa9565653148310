"""The app database as the domains need it: migrated, with the sample reference data loaded.

Lives beside the domain packages (not in one) because it serves all of them; the main job,
the load tests and the test tiers call it before their workers ingest.
"""

from __future__ import annotations

import psycopg

from app.core.migrate import migrate
from app.domains.rate_audit.activities import seed_contracts
from app.domains.rate_audit.rates import sample_contracts


def prepare(dsn: str) -> tuple[list[str], int]:
    """Apply pending migrations and load the sample contract rates (both idempotent).

    Returns the migrations applied and the number of contract rates loaded."""
    applied = migrate(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        contracts = seed_contracts(conn, sample_contracts())
    return applied, contracts
