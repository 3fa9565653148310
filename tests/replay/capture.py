"""Capture fresh replay histories: `python -m tests.replay.capture [TYPE ...]`.

Boots a throwaway dev cluster, serves every discovered task queue in-process, runs each
scenario once, and writes its history to tests/replay/histories/<Type>.json.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

from app.core.settings import Settings
from app.platform.client import HaulClient, connect
from app.platform.discovery import discover
from app.platform.worker import build_workers
from app.stack import cluster, targets
from tests.replay.scenarios import SCENARIOS

HISTORIES = Path(__file__).parent / "histories"


async def capture(names: list[str], cluster_name: str) -> list[Path]:
    target = targets.resolve(cluster_name)
    client = await connect(target.profile, config_file=target.config_file)
    workers = build_workers(client, discover(), Settings())
    written = []
    async with asyncio.TaskGroup() as tg:
        for w in workers:
            tg.create_task(w.run())
        try:
            haul = HaulClient(client)
            for name in names:
                handle = await SCENARIOS[name](haul, f"replay-{uuid.uuid4().hex[:8]}")
                await handle.result()
                history = await handle.fetch_history()
                path = HISTORIES / f"{name}.json"
                path.write_text(history.to_json())
                written.append(path)
        finally:
            for w in workers:
                await w.shutdown()
    return written


def main() -> None:
    names = sys.argv[1:] or sorted(SCENARIOS)
    HISTORIES.mkdir(exist_ok=True)
    rec = cluster.up("replay-capture", "dev", headless=True)
    try:
        for path in asyncio.run(capture(names, rec.name)):
            print(f"wrote {path}")
    finally:
        cluster.down(rec.name, purge=True)


if __name__ == "__main__":
    main()
