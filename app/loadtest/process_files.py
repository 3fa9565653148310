"""The files each Locust process leaves for the parent `haul loadtest` process.

Every process writes its bridge stats (`harness-<tag>.json`) and, for parcel_ingest, the root
workflow IDs it started (`roots-<tag>.txt`) into the run's directory. The tag is host and pid,
so processes on different hosts (Locust workers in their own pods, each often pid 1 to 10)
never overwrite each other. A remote worker sends its files to the master, which writes them
under the same names; only names that match `SHIPPED` are accepted from the wire.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

HARNESS_GLOB = "harness-*.json"
ROOTS_GLOB = "roots-*.txt"
SHIPPED = re.compile(r"^(harness-[A-Za-z0-9_.-]+\.json|roots-[A-Za-z0-9_.-]+\.txt)$")
# A worker's files for one run: the stats are a few hundred bytes, and a root ID is short,
# so this bounds a hostile or broken worker, not a real one.
MAX_SHIPPED_BYTES = 64 * 1024 * 1024


def process_tag() -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


def harness_file(out_dir: Path) -> Path:
    return out_dir / f"harness-{process_tag()}.json"


def roots_file(out_dir: Path) -> Path:
    """This process's list of root workflow IDs, beside the other harness files."""
    return out_dir / f"roots-{process_tag()}.txt"


def shape_timeline_file(out_dir: Path) -> Path:
    """Where the process that runs a capacity shape records each step's times (a
    `ShapeTimeline`): the master's own directory, so it never travels."""
    return out_dir / "shape-steps.json"


def own_files(out_dir: Path) -> dict[str, str]:
    """This process's files, by name, for sending to the master."""
    paths = (harness_file(out_dir), roots_file(out_dir))
    return {p.name: p.read_text() for p in paths if p.exists()}


def write_shipped(out_dir: Path, files: dict[str, str]) -> list[str]:
    """Write the files a worker sent; returns the names refused (bad name or too large)."""
    refused = []
    for name, text in files.items():
        if not isinstance(text, str) or not SHIPPED.match(name) or len(text) > MAX_SHIPPED_BYTES:
            refused.append(str(name)[:80])
            continue
        (out_dir / name).write_text(text)
    return refused


def read_roots(out_dir: Path) -> set[str]:
    """Every root workflow ID the run's Locust processes recorded."""
    return {
        line for path in out_dir.glob(ROOTS_GLOB) for line in path.read_text().splitlines() if line
    }
