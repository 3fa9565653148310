"""Entry for running haul's Locust scenarios by hand: `locust -f loadtest/locustfile.py`.

`haul loadtest ...` loads app/loadtest/locustfile.py itself; this file only re-exports it.
"""

from app.loadtest.locustfile import *  # noqa: F403
