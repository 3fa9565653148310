"""The fingerprint of a failure's cause: one group for many failures with one cause.

A message carries the IDs, amounts and timestamps of the run that hit it; those are replaced by
placeholders so that 3,000 failures of one bug normalise to one message, and the type plus that
message hash to one short key.
"""

from __future__ import annotations

import hashlib
import re

# Order matters: the wider patterns first, so a UUID is not eaten as hex and numbers.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
        "<uuid>",
    ),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", re.I), "<hex>"),
    # IDs: a word with both letters and digits, possibly joined by - _ . | : /
    (re.compile(r"\b(?=[\w.|:/-]*\d)(?=[\w.|:/-]*[a-z])[\w.|:/-]+\b", re.I), "<id>"),
    (re.compile(r"[-+]?\d+(?:[.,]\d+)*"), "<n>"),
    (re.compile(r"\s+"), " "),
)


def normalize(message: str) -> str:
    """The message with quoted values, UUIDs, hex, IDs and numbers replaced by placeholders."""
    for pattern, placeholder in _RULES:
        message = pattern.sub(placeholder, message)
    return message.strip()


def fingerprint(error_type: str, message: str) -> str:
    """A 16-hex-digit key of the failure type and its normalised message."""
    digest = hashlib.sha256(f"{error_type}\n{normalize(message)}".encode())
    return digest.hexdigest()[:16]
