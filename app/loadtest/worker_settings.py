"""What a distributed Locust worker takes from its master for each run.

The master's Locust environment holds the run's target and settings; a worker gets the
target's coordinates and the HAUL_LT_* settings, never credentials (TEMPORAL_API_KEY, TLS key
data, the app database URL): those come from the worker's own environment.
"""

from __future__ import annotations

from collections.abc import Mapping

TARGET_KEYS = ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_PROFILE", "TEMPORAL_CONFIG_FILE")
# Per-process or per-role settings that never cross from the master.
LOCAL_KEYS = ("HAUL_LT_OUT", "HAUL_LT_SETTINGS", "HAUL_LT_STOP_AFTER")


def forwarded(env: Mapping[str, str]) -> dict[str, str]:
    """The part of the master's environment a worker applies for this run."""
    return {
        k: v
        for k, v in env.items()
        if (k in TARGET_KEYS or k.startswith("HAUL_LT_")) and k not in LOCAL_KEYS
    }
