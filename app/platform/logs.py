"""Structured JSON logs that carry the workflow and run IDs temporalio attaches."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

_CONTEXT_KEYS = ("temporal_workflow", "temporal_activity")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _CONTEXT_KEYS:
            ctx = getattr(record, key, None)
            if isinstance(ctx, dict):
                for name in ("workflow_id", "run_id", "workflow_type", "activity_type"):
                    if name in ctx:
                        out[name] = ctx[name]
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(level: int = logging.INFO) -> None:
    """Send every log record to stderr as one JSON object per line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
